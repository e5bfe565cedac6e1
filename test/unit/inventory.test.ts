import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compareInventories } from '../../src/inventory/diff.js';
import type { Inventory, Package } from '../../src/inventory/inventory.js';
import { readInventory, readMergedInventory } from '../../src/inventory/read.js';
import { cleanupAll, tmpDir } from '../helpers/tools.js';

afterAll(cleanupAll);

/** Writes `files` (path → content; `{ link }` for a symlink) under a fresh directory. */
async function tree(files: Record<string, string | { link: string }>): Promise<string> {
  const root = await tmpDir('inventory');
  for (const [rel, content] of Object.entries(files)) {
    const file = path.join(root, rel);
    await mkdir(path.dirname(file), { recursive: true });
    if (typeof content === 'string') await writeFile(file, content);
    else await symlink(content.link, file);
  }
  return root;
}

const DEBIAN_OS =
  'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n';

const STATUS = `Package: libc6
Status: install ok installed
Priority: optional
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u4
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.

Package: removed-but-configured
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0-1

Package: python3-requests
Status: install ok installed
Architecture: all
Source: requests (2.28.1+dfsg-1)
Version: 2.28.1+dfsg-1

Package: libgcc-s1
Status: install ok installed
Architecture: amd64
Source: gcc-12 (12.2.0-14)
Version: 12.2.0-14

Package: perl-base
Status: hold ok installed
Architecture: amd64
Source: perl
Version: 5.36.0-7+deb12u1

Package: dpkg
status: install ok installed
Architecture: amd64
Version: 1:1.21.22

Package: half
Status: install reinstreq half-installed
Architecture: amd64
Version: 3
`;

describe('readInventory', () => {
  it('reads dpkg: installed packages only, epoch kept, Architecture all kept, source and purl', async () => {
    const root = await tree({
      'usr/lib/os-release': DEBIAN_OS,
      'etc/os-release': { link: '../usr/lib/os-release' },
      'var/lib/dpkg/status': STATUS,
    });
    const inv = await readInventory(root, {});
    expect(inv.os).toEqual({ id: 'debian', versionId: '12', prettyName: 'Debian GNU/Linux 12 (bookworm)' });
    const byName = Object.fromEntries(inv.packages.map((p) => [p.name, p]));
    expect(Object.keys(byName).sort()).toEqual([
      'dpkg',
      'libc6',
      'libgcc-s1',
      'perl-base',
      'python3-requests',
    ]);
    expect(byName.dpkg.version).toBe('1:1.21.22');
    expect(byName.dpkg.purl).toBe('pkg:deb/debian/dpkg@1:1.21.22?arch=amd64&distro=debian-12');
    expect(byName.libc6).toEqual({
      ecosystem: 'deb',
      name: 'libc6',
      version: '2.36-9+deb12u4',
      arch: 'amd64',
      source: 'glibc',
      location: 'var/lib/dpkg/status',
      purl: 'pkg:deb/debian/libc6@2.36-9+deb12u4?arch=amd64&distro=debian-12&upstream=glibc',
    });
    // The source's version in parens: the source name alone in `source`, both in the purl's upstream.
    expect(byName['libgcc-s1'].source).toBe('gcc-12');
    expect(byName['libgcc-s1'].purl).toContain('upstream=gcc-12%4012.2.0-14');
    expect(byName['python3-requests'].arch).toBe('all');
    expect(byName['python3-requests'].purl).toContain('arch=all');
  });

  it('reads apk, npm globals (scoped too), Python dist-info and egg-info, and the tool cache', async () => {
    const root = await tree({
      'etc/os-release': 'ID=alpine\nVERSION_ID=3.20.3\n',
      'lib/apk/db/installed':
        'C:Q1abc=\nP:musl\nV:1.2.5-r0\nA:x86_64\no:musl\nT:the musl c library\n\nP:busybox-binsh\nV:1.36.1-r29\nA:x86_64\no:busybox\n\nP:broken\nA:x86_64\n',
      'usr/local/lib/node_modules/typescript/package.json': '{"name":"typescript","version":"5.9.3"}',
      'usr/local/lib/node_modules/@angular/cli/package.json': '{"name":"@angular/cli","version":"18.0.1"}',
      'usr/local/lib/node_modules/.bin/tsc': '',
      'usr/local/lib/node_modules/bad/package.json': '{not json',
      'opt/node22/lib/node_modules/pnpm/package.json': '{"name":"pnpm","version":"9.1.0"}',
      'usr/lib/python3/dist-packages/requests-2.28.1.egg-info/PKG-INFO':
        'Metadata-Version: 2.1\nName: requests\nVersion: 2.28.1\n\nLong: text\n',
      'usr/lib/python3/dist-packages/six-1.16.0.egg-info':
        'Metadata-Version: 1.2\nName: six\nVersion: 1.16.0\n',
      'usr/local/lib/python3.11/site-packages/Typing_Extensions-4.12.2.dist-info/METADATA':
        'Metadata-Version: 2.1\nName: Typing_Extensions\nVersion: 4.12.2\nSummary: x\n\nName: not-this\n',
      'opt/hostedtoolcache/node/22.1.0/x64/bin/node': '',
      'opt/hostedtoolcache/node/22.1.0/x64.complete': '',
      'opt/hostedtoolcache/node/20.0.0/x64/bin/node': '', // no .complete: an interrupted download
    });
    const inv = await readInventory(root, { path: ['/opt/node22/bin', '/usr/bin', 'relative/bin'] });
    const brief = inv.packages.map((p) => `${p.ecosystem} ${p.name} ${p.version} ${p.purl}`);
    expect(brief).toEqual([
      'apk busybox-binsh 1.36.1-r29 pkg:apk/alpine/busybox-binsh@1.36.1-r29?arch=x86_64&distro=alpine-3.20.3&upstream=busybox',
      'apk musl 1.2.5-r0 pkg:apk/alpine/musl@1.2.5-r0?arch=x86_64&distro=alpine-3.20.3',
      'npm @angular/cli 18.0.1 pkg:npm/%40angular/cli@18.0.1',
      'npm pnpm 9.1.0 pkg:npm/pnpm@9.1.0',
      'npm typescript 5.9.3 pkg:npm/typescript@5.9.3',
      // Sorted by code unit, as the inventory promises: capitals first.
      'pypi Typing_Extensions 4.12.2 pkg:pypi/typing-extensions@4.12.2',
      'pypi requests 2.28.1 pkg:pypi/requests@2.28.1',
      'pypi six 1.16.0 pkg:pypi/six@1.16.0',
      'toolcache node 22.1.0 pkg:generic/node@22.1.0?arch=x64',
    ]);
    expect(inv.path).toEqual(['/opt/node22/bin', '/usr/bin', 'relative/bin']);
    // The apk stanza without a version and the package.json that is not JSON.
    expect(inv.unreadable).toBe(2);
    expect(inv.packages.find((p) => p.name === 'six')?.location).toBe(
      'usr/lib/python3/dist-packages/six-1.16.0.egg-info',
    );
    const cache = await readInventory(root, { toolCache: '/nowhere' });
    expect(cache.packages.filter((p) => p.ecosystem === 'toolcache')).toEqual([]);
  });

  it('never follows a symlink out of the root: absolute and .. targets stay inside, as in a chroot', async () => {
    const host = await tree({
      'var/lib/dpkg/status': 'Package: host-only\nStatus: install ok installed\nVersion: 1\n',
      'lib/node_modules/hostpkg/package.json': '{"name":"hostpkg","version":"6.6.6"}',
    });
    const root = await tree({
      // Absolute: resolved under the root, where nothing is.
      'var/lib/dpkg/status': { link: path.join(host, 'var/lib/dpkg/status') },
      // `..` past the root stops at the root.
      'usr/local/lib/node_modules': { link: `../../../../../../../..${host}/lib/node_modules` },
      'usr/lib/node_modules/loop': { link: 'loop' },
      'lib/apk/db/installed': { link: '/lib/apk/db/installed' },
    });
    const inv = await readInventory(root, { path: [`${host}/bin`] });
    expect(inv.packages).toEqual([]);
    // Inside the root a link is followed, absolute or not.
    const root2 = await tree({ 'var/lib/dpkg/status': { link: '/real/status' } });
    await mkdir(path.join(root2, 'real'));
    await writeFile(
      path.join(root2, 'real/status'),
      'Package: inside\nStatus: install ok installed\nVersion: 2\n',
    );
    expect((await readInventory(root2, {})).packages.map((p) => p.name)).toEqual(['inside']);
  });

  it('refuses a fifo where a database should be, without blocking', async () => {
    const root = await tree({});
    await mkdir(path.join(root, 'var/lib/dpkg'), { recursive: true });
    execFileSync('mkfifo', [path.join(root, 'var/lib/dpkg/status')]);
    expect((await readInventory(root, {})).packages).toEqual([]);
  });

  it('reads a merged view of lower dirs: the first that has a file wins, a whiteout hides the rest', async () => {
    const top = await tree({
      'usr/local/lib/node_modules/typescript/package.json': '{"name":"typescript","version":"5.9.3"}',
    });
    const bottom = await tree({
      'usr/local/lib/node_modules/typescript/package.json': '{"name":"typescript","version":"4.0.0"}',
      'usr/local/lib/node_modules/gone/package.json': '{"name":"gone","version":"1.0.0"}',
      'usr/local/lib/node_modules/kept/package.json': '{"name":"kept","version":"1.0.0"}',
    });
    execFileSync('mknod', [path.join(top, 'usr/local/lib/node_modules/gone'), 'c', '0', '0']);
    const inv = await readMergedInventory([top, bottom], {});
    expect(inv.packages.map((p) => `${p.name}@${p.version}`)).toEqual(['kept@1.0.0', 'typescript@5.9.3']);
    // A directory deleted and made again above: opaque, what the roots below held in it is hidden.
    execFileSync('setfattr', [
      '-n',
      'trusted.overlay.opaque',
      '-v',
      'y',
      path.join(top, 'usr/local/lib/node_modules'),
    ]);
    const opaque = await readMergedInventory([top, bottom], {});
    expect(opaque.packages.map((p) => `${p.name}@${p.version}`)).toEqual(['typescript@5.9.3']);
  });
});

function pkg(
  ecosystem: Package['ecosystem'],
  name: string,
  version: string,
  over: Partial<Package> = {},
): Package {
  return { ecosystem, name, version, location: `x/${name}`, purl: `pkg:x/${name}@${version}`, ...over };
}

describe('compareInventories', () => {
  it('gives per ecosystem what was added, removed and upgraded, and the PATH entries gained and lost', () => {
    const before: Inventory = {
      packages: [
        pkg('deb', 'libc6', '2.36-9', { arch: 'amd64' }),
        pkg('deb', 'libc6', '2.36-9', { arch: 'i386' }),
        pkg('deb', 'old-tool', '1.0'),
        pkg('npm', 'typescript', '5.0.0', { location: 'usr/local/lib/node_modules/typescript/package.json' }),
        pkg('pypi', 'Requests', '2.28.1', {
          location: 'usr/lib/python3/dist-packages/requests-2.28.1.egg-info/PKG-INFO',
        }),
        pkg('toolcache', 'node', '20.0.0', { arch: 'x64' }),
      ],
      path: ['/usr/local/bin', '/usr/bin', '/old/bin'],
    };
    const after: Inventory = {
      packages: [
        pkg('deb', 'libc6', '2.36-9+deb12u4', { arch: 'amd64' }),
        pkg('deb', 'libc6', '2.36-9', { arch: 'i386' }),
        pkg('deb', 'python3', '3.11.2-1+b1', { arch: 'amd64' }),
        // The same name in another node_modules is another package.
        pkg('npm', 'typescript', '5.9.3', { location: 'usr/local/lib/node_modules/typescript/package.json' }),
        pkg('npm', 'typescript', '5.9.3', { location: 'opt/node/lib/node_modules/typescript/package.json' }),
        pkg('pypi', 'requests', '2.32.0', {
          location: 'usr/lib/python3/dist-packages/requests-2.32.0.dist-info/METADATA',
        }),
        pkg('toolcache', 'node', '20.0.0', { arch: 'x64' }),
        pkg('toolcache', 'node', '22.1.0', { arch: 'x64' }),
      ],
      path: ['/opt/mytool/bin', '/usr/local/bin', '/usr/bin'],
    };
    const changes = compareInventories(before, after);
    const names = (list: Package[]) => list.map((p) => `${p.name}@${p.version}${p.arch ? ':' + p.arch : ''}`);
    expect(Object.keys(changes.ecosystems).sort()).toEqual(['deb', 'npm', 'pypi', 'toolcache']);
    expect(names(changes.ecosystems.deb!.added)).toEqual(['python3@3.11.2-1+b1:amd64']);
    expect(names(changes.ecosystems.deb!.removed)).toEqual(['old-tool@1.0']);
    expect(
      changes.ecosystems.deb!.upgraded.map((u) => `${u.to.name} ${u.from.version} → ${u.to.version}`),
    ).toEqual(['libc6 2.36-9 → 2.36-9+deb12u4']);
    expect(names(changes.ecosystems.npm!.added)).toEqual(['typescript@5.9.3']);
    expect(changes.ecosystems.npm!.added[0].location).toMatch(/^opt\/node/);
    expect(changes.ecosystems.npm!.upgraded.map((u) => u.to.version)).toEqual(['5.9.3']);
    // A dist-info replacing an egg-info of the same (normalised) name in the same directory: an upgrade.
    expect(changes.ecosystems.pypi).toMatchObject({ added: [], removed: [] });
    expect(changes.ecosystems.pypi!.upgraded.map((u) => u.to.version)).toEqual(['2.32.0']);
    // Tool cache versions sit side by side: a new one is added, not an upgrade.
    expect(names(changes.ecosystems.toolcache!.added)).toEqual(['node@22.1.0:x64']);
    expect(changes.ecosystems.toolcache!.upgraded).toEqual([]);
    expect(changes.path).toEqual({ gained: ['/opt/mytool/bin'], lost: ['/old/bin'] });
  });

  it('finds nothing between an inventory and itself', () => {
    const inv: Inventory = { packages: [pkg('deb', 'a', '1'), pkg('npm', 'b', '2')], path: ['/usr/bin'] };
    expect(compareInventories(inv, inv)).toEqual({ ecosystems: {}, path: { gained: [], lost: [] } });
  });
});
