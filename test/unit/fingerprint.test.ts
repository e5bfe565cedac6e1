import { describe, expect, it } from 'vitest';
import { fingerprint } from '../../src/layer/fingerprint.js';
import { EntryTable, type Entry } from '../../src/walk/entries.js';
import { makeEntries, type Spec } from './entries.js';

function specs(): Spec[] {
  return [
    [
      'usr/bin/ping',
      4096,
      { mode: 0o4755, xattrs: [['security.capability', Buffer.from([1, 0, 0, 2, 0x80, 0xff])]] },
    ],
    ['usr/bin/a', 100, { linkGroup: '2049:77' }],
    ['usr/bin/b', 100, { linkGroup: '2049:77' }],
    ['usr/bin/c', 100],
    ['usr/lib/libc.so', 0, { kind: 'symlink', linkTarget: Buffer.from('libc.so.6') }],
    ['dev/null', 0, { kind: 'char', devMajor: 1, devMinor: 3 }],
  ];
}

const all = (entries: Entry[]) => entries.map((_, i) => i);
const fp = (entries: Entry[], compression = 'gzip', level = 1) =>
  fingerprint(EntryTable.from(entries), all(entries), compression, level);

/** The fingerprint after changing one field of one entry of a fresh tree. */
function fpWith(path: string, change: Partial<Entry>): string {
  const entries = makeEntries(specs());
  Object.assign(
    entries.find((e) => e.path.toString() === path)!,
    change,
  );
  return fp(entries);
}

describe('fingerprint', () => {
  const base = fp(makeEntries(specs()));

  it('is a sha256 and the same for the same entries', () => {
    expect(base).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(fp(makeEntries(specs()))).toBe(base);
  });

  it.each<[string, string, Partial<Entry>]>([
    ['mode', 'usr/bin/c', { mode: 0o755 }],
    ['uid', 'usr/bin/c', { uid: 1000 }],
    ['gid', 'usr/bin/c', { gid: 1000 }],
    ['mtime nsec', 'usr/bin/c', { mtimeNsec: 1 }],
    ['mtime sec', 'usr/bin/c', { mtimeSec: 1_700_000_001 }],
    ['size', 'usr/bin/c', { size: 101 }],
    [
      'xattr value',
      'usr/bin/ping',
      { xattrs: [['security.capability', Buffer.from([1, 0, 0, 2, 0x80, 0xfe])]] },
    ],
    ['xattr added', 'usr/bin/c', { xattrs: [['user.x', Buffer.alloc(0)]] }],
    ['link target', 'usr/lib/libc.so', { linkTarget: Buffer.from('libc.so.7') }],
    ['device minor', 'dev/null', { devMinor: 5 }],
    ['kind', 'usr/bin/c', { kind: 'fifo' }],
    ['hardlink group', 'usr/bin/c', { linkGroup: '2049:77' }],
  ])('changes with %s', (_what, path, change) => {
    expect(fpWith(path, change)).not.toBe(base);
  });

  it('changes with compression and level', () => {
    const entries = makeEntries(specs());
    expect(fp(entries, 'zstd', 1)).not.toBe(base);
    expect(fp(entries, 'gzip', 6)).not.toBe(base);
    expect(fp(entries, 'none', 0)).not.toBe(base);
  });

  it('changes with the set of entries', () => {
    const entries = makeEntries(specs());
    expect(fingerprint(EntryTable.from(entries), all(entries).slice(1), 'gzip', 1)).not.toBe(base);
  });

  it('does not depend on inode numbers, only on how entries are grouped', () => {
    const other = makeEntries(specs());
    for (const e of other) if (e.linkGroup) e.linkGroup = '64768:9999999';
    expect(fp(other)).toBe(base);

    const regrouped = makeEntries(specs());
    regrouped.find((e) => e.path.toString() === 'usr/bin/b')!.linkGroup = '2049:78';
    expect(fp(regrouped)).not.toBe(base);
  });
});
