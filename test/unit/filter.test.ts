import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { Filter, type FilterOptions } from '../../src/walk/filter.js';
import type { Mount } from '../../src/walk/mountinfo.js';
import { walk } from '../../src/walk/walk.js';

const ROOT = '/srv/root';
const mount = (mountPoint: string, fsType: string): Mount => ({
  mountPoint: Buffer.from(mountPoint),
  fsType,
  superOptions: 'rw',
});

function filter(over: Partial<FilterOptions> = {}): Filter {
  return new Filter({
    root: ROOT,
    mounts: [],
    swapFiles: [],
    hostPathsToDrop: [],
    exclude: [],
    include: [],
    ...over,
  });
}

describe('Filter defaults and mounts', () => {
  it('keeps the volatile directories empty, not their siblings or contents', () => {
    const f = filter();
    for (const d of ['/proc', '/sys', '/dev', '/run', '/tmp']) expect(f.classify(d)?.action, d).toBe('empty');
    expect(f.classify('/procfs')).toBeNull();
    expect(f.classify('/usr')).toBeNull();
  });

  it('empties virtual filesystems below the root, keeps real ones, ignores mounts outside', () => {
    const f = filter({
      mounts: [
        mount(ROOT, 'overlay'),
        mount(`${ROOT}/mnt/ram`, 'tmpfs'),
        mount(`${ROOT}/sys/fs/cgroup`, 'cgroup2'),
        mount(`${ROOT}/data`, 'ext4'),
        mount('/srv/rootfs/mnt', 'tmpfs'),
        mount('/mnt/ram2', 'tmpfs'),
      ],
    });
    expect(f.classify('/mnt/ram')).toEqual({ action: 'empty', reason: 'tmpfs mount' });
    expect(f.classify('/sys/fs/cgroup')).toEqual({ action: 'empty', reason: 'cgroup2 mount' });
    expect(f.classify('/data')).toBeNull();
    expect(f.classify('/mnt')).toBeNull();
    expect(f.classify('/mnt/ram2')).toBeNull();
    expect(f.classify('/')).toBeNull();
  });

  it('works with / as the root', () => {
    const f = new Filter({
      root: '/',
      mounts: [mount('/mnt/ram', 'tmpfs')],
      swapFiles: [],
      hostPathsToDrop: [],
      exclude: [],
      include: [],
    });
    expect(f.classify('/mnt/ram')?.action).toBe('empty');
  });

  it('drops runtime files only when they are mount points', () => {
    const f = filter({
      mounts: [mount(`${ROOT}/etc/hosts`, 'ext4'), mount(`${ROOT}/etc/resolv.conf`, 'ext4')],
    });
    expect(f.classify('/etc/hosts')).toEqual({ action: 'drop', reason: 'bind-mounted by the runtime' });
    expect(f.classify('/etc/resolv.conf')?.action).toBe('drop');
    expect(f.classify('/etc/hostname')).toBeNull();
  });

  it('drops swap files inside the root', () => {
    const f = filter({ swapFiles: [Buffer.from(`${ROOT}/swapfile`), Buffer.from('/swapfile2')] });
    expect(f.classify('/swapfile')).toEqual({ action: 'drop', reason: 'swap file' });
    expect(f.classify('/swapfile2')).toBeNull();
  });

  it('drops host paths inside the root, ignores those outside and the root itself', () => {
    const f = filter({
      hostPathsToDrop: [
        { path: `${ROOT}/home/runner/work/_temp/`, reason: 'runner temp' },
        { path: '/home/runner/out', reason: 'output' },
        { path: ROOT, reason: 'root' },
      ],
    });
    expect(f.classify('/home/runner/work/_temp')).toEqual({ action: 'drop', reason: 'runner temp' });
    expect(f.classify('/home/runner/out')).toBeNull();
    expect(f.classify('/')).toBeNull();
  });
});

describe('Filter user globs', () => {
  const f = filter({ exclude: ['/var/cache/**', '**/*.pyc', 'var/log', ' /opt/big/ '] });

  it.each([
    ['/var/cache/apt', '/var/cache/**'],
    ['/var/cache/apt/archives/x.deb', '/var/cache/**'],
    ['/usr/lib/python3/x.pyc', '**/*.pyc'],
    ['/usr/lib/python3/.hidden.pyc', '**/*.pyc'],
    ['/var/log', 'var/log'],
    ['/opt/big', ' /opt/big/ '],
  ])('drops %s (%s)', (key, pattern) => {
    expect(f.classify(key)).toEqual({ action: 'drop', reason: `exclude: ${pattern}` });
  });

  it.each(['/var/cached', '/var/lib/x.py', '/var/logs', '/opt/bigger'])('keeps %s', (key) => {
    expect(f.classify(key)).toBeNull();
  });

  // BUG: normalizePattern makes `**/*.pyc` into `/**/*.pyc`, and picomatch's `/**/` needs at least one
  // directory, so a .pyc directly under the root is not excluded.
  it('drops a .pyc directly under the root too (**/*.pyc)', () => {
    expect(f.classify('/x.pyc')?.action).toBe('drop');
  });

  it('matches non-UTF-8 names through their UTF-8 reading', () => {
    const key = '/usr/lib/' + Buffer.from([0xff, 0x61]).toString('latin1') + '.pyc';
    expect(f.classify(key)?.action).toBe('drop');
  });

  it('include globs say which paths win over exclusions', () => {
    const g = filter({ exclude: ['/var/cache/**'], include: ['/var/cache/keep/**', 'etc/important.conf'] });
    expect(g.included('/var/cache/keep/a/b')).toBe(true);
    expect(g.included('/etc/important.conf')).toBe(true);
    expect(g.included('/var/cache/other')).toBe(false);
    expect(g.classify('/var/cache/keep/a/b')?.action).toBe('drop'); // the walk asks included() first
  });

  it('leadsToInclude is true on the way to an include and false elsewhere', () => {
    const g = filter({ include: ['/var/cache/keep/**', '/etc/important.conf'] });
    for (const k of ['/', '/var', '/var/cache', '/var/cache/keep', '/etc'])
      expect(g.leadsToInclude(k), k).toBe(true);
    for (const k of ['/usr', '/var/lib', '/var/cach', '/etc/important.conf.d'])
      expect(g.leadsToInclude(k), k).toBe(false);
    expect(filter().leadsToInclude('/')).toBe(false);
  });

  // BUG: leadsToInclude only looks for the glob's static base at or below the directory, so a directory
  // below the base (`/opt/x` for `/opt/*/keep`) is never walked, although the glob may match inside it.
  it('leadsToInclude is true below the static base of a glob (/opt/*/keep reaches /opt/x)', () => {
    expect(filter({ include: ['/opt/*/keep'] }).leadsToInclude('/opt/x')).toBe(true);
  });
});

describe('walk with include under an exclusion', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'filter-walk-'));
    for (const d of ['opt/a/keep', 'opt/a/skip', 'opt/b', 'usr'])
      await mkdir(path.join(root, d), { recursive: true });
    for (const f of ['opt/a/keep/x', 'opt/a/skip/y', 'opt/b/z', 'usr/u'])
      await writeFile(path.join(root, f), f);
  });
  afterAll(() => rm(root, { recursive: true, force: true }));
  const run = async (exclude: string[], include: string[]) => {
    const r = await walk({
      root,
      log: silentLogger,
      filter: new Filter({ root, mounts: [], swapFiles: [], hostPathsToDrop: [], exclude, include }),
      keepIdentity: false,
    });
    return [...r.entries].map((e) => e.path.toString());
  };

  it('keeps an included subtree and its parents, nothing else of the excluded directory', async () => {
    expect(await run(['/opt'], ['/opt/a/keep/**'])).toEqual([
      'opt',
      'opt/a',
      'opt/a/keep',
      'opt/a/keep/x',
      'usr',
      'usr/u',
    ]);
  });

  // Same bug as above, seen from the walk: the include glob `/opt/*/keep/**` keeps nothing.
  it('keeps what a glob with a wildcard directory includes under an excluded directory', async () => {
    expect(await run(['/opt'], ['/opt/*/keep/**'])).toContain('opt/a/keep/x');
  });
});
