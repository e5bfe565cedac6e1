import { execFileSync } from 'node:child_process';
import { link, mkdir, symlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { readDirectory, readDirectoryInJs, scannerKind, type Listing } from '../../src/walk/directory.js';
import { silentLogger } from '../../src/log.js';
import { Filter } from '../../src/walk/filter.js';
import { cleanupAll, tmpDir } from '../helpers/tools.js';

afterAll(cleanupAll);

/** A directory of every kind the scanner reports, with names that are not UTF-8 and sort by bytes. */
async function awkwardTree(): Promise<string> {
  const root = path.join(await tmpDir('scanner'), 'root');
  await mkdir(path.join(root, 'sub', 'deeper'), { recursive: true });
  await writeFile(path.join(root, 'b'), 'bee');
  await writeFile(path.join(root, 'B'), 'big bee');
  await writeFile(Buffer.from(`${root}/caf\xe9`, 'latin1'), 'latin1 name');
  await writeFile(path.join(root, 'café'), 'utf-8 name');
  await writeFile(path.join(root, 'a'.repeat(255)), 'longest name');
  await link(path.join(root, 'b'), path.join(root, 'b-link'));
  await symlink('sub/deeper/../../b', path.join(root, 'to-b'));
  await symlink('/nowhere/' + 'x'.repeat(300), path.join(root, 'dangling'));
  execFileSync('mkfifo', [path.join(root, 'fifo')]);
  execFileSync('mknod', [path.join(root, 'null'), 'c', '1', '3']);
  execFileSync('mknod', [path.join(root, 'disk'), 'b', '259', '70000']); // a minor above 255
  await utimes(path.join(root, 'b'), new Date(-5_000), new Date(-5_000)); // before 1970
  return root;
}

/** Every name and stat of a listing, as plain data. */
function dump(listing: Listing): unknown[] {
  return listing.names.map((name, i) => ({ name, ...listing.stat(i) }));
}

describe('the native directory scanner', () => {
  it('runs here (x64 and arm64 Linux), so the walk does not fall back to JavaScript', () => {
    expect(scannerKind()).toBe('native');
  });

  it('lists names sorted by their bytes, with the same stat fields and targets as lstat', async () => {
    const root = await awkwardTree();
    for (const dir of [root, path.join(root, 'sub'), path.join(root, 'sub', 'deeper')]) {
      const native = readDirectory(Buffer.from(dir));
      const js = readDirectoryInJs(Buffer.from(dir));
      expect(dump(native)).toEqual(dump(js));
    }
    const names = readDirectory(Buffer.from(root)).names;
    expect(names).toContain('caf\xe9');
    expect(names).toContain(Buffer.from('café').toString('latin1'));
    expect(names.indexOf('B')).toBeLessThan(names.indexOf('b')); // 0x42 before 0x62
    const listing = readDirectory(Buffer.from(root));
    const stat = (name: string) => listing.stat(listing.names.indexOf(name));
    expect(stat('b').fileId).toBeDefined();
    expect(stat('b').fileId).toBe(stat('b-link').fileId);
    expect(stat('sub').fileId).toBeUndefined();
    expect(stat('disk')).toMatchObject({ rdevMajor: 259, rdevMinor: 70000 });
    expect(stat('b')).toMatchObject({ mtimeSec: -5, mtimeNsec: 0 });
    expect(stat('dangling').linkTarget?.toString()).toBe('/nowhere/' + 'x'.repeat(300));
  });

  it('throws like readdir for what it cannot list, and reports an entry gone since the listing', async () => {
    const root = await awkwardTree();
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (err) {
        return (err as NodeJS.ErrnoException).code;
      }
      return 'no error';
    };
    expect(code(() => readDirectory(Buffer.from(path.join(root, 'missing'))))).toBe('ENOENT');
    expect(code(() => readDirectory(Buffer.from(path.join(root, 'b'))))).toBe('ENOTDIR');
    // A symlink to a directory is not followed.
    expect(code(() => readDirectory(Buffer.from(path.join(root, 'sub-link-dir'))))).toBe('ENOENT');
    await symlink('sub', path.join(root, 'sub-link-dir'));
    expect(['ELOOP', 'ENOTDIR']).toContain(
      code(() => readDirectory(Buffer.from(path.join(root, 'sub-link-dir')))),
    );
  });

  it('walks a tree to the same entries as the JavaScript walk', async () => {
    const root = await awkwardTree();
    const filter = new Filter({
      root,
      mounts: [],
      swapFiles: [],
      hostPathsToDrop: [],
      exclude: [],
      include: [],
      rewritten: [],
    });
    const walkWith = async (js: boolean) => {
      vi.resetModules();
      if (js) process.env.SNAPSHOT_ACTION_JS_WALK = '1';
      try {
        const { walk } = await import('../../src/walk/walk.js');
        const { scannerKind: kind } = await import('../../src/walk/directory.js');
        const result = await walk({ root, filter, log: silentLogger, keepIdentity: true });
        return { kind: kind(), entries: [...result.entries] };
      } finally {
        delete process.env.SNAPSHOT_ACTION_JS_WALK;
      }
    };
    const native = await walkWith(false);
    const js = await walkWith(true);
    expect([native.kind, js.kind]).toEqual(['native', 'javascript']);
    expect(native.entries.length).toBeGreaterThan(10);
    expect(native.entries).toEqual(js.entries);
  });

  it('walks a root given through a symlink, following no other', async () => {
    const root = await awkwardTree();
    const link = root + '-link';
    await symlink(root, link);
    const filter = new Filter({
      root: link,
      mounts: [],
      swapFiles: [],
      hostPathsToDrop: [],
      exclude: [],
      include: [],
    });
    vi.resetModules(); // the native scanner, not the JavaScript one an earlier test loaded
    const { walk } = await import('../../src/walk/walk.js');
    const result = await walk({ root: link, filter, log: silentLogger, keepIdentity: true });
    const paths = [...result.entries].map((e) => e.path.toString('latin1'));
    expect(paths).toContain('sub/deeper');
    expect(paths).toContain('to-b');
    expect([...result.entries].find((e) => e.path.toString() === 'to-b')?.kind).toBe('symlink');
  });
});
