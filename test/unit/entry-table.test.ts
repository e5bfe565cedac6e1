import { describe, expect, it } from 'vitest';
import { EntryTable, type Entry } from '../../src/walk/entries.js';

function entry(i: number, extra: Partial<Entry> = {}): Entry {
  return {
    path: Buffer.from(`dir${i % 7}/name-${i}`),
    kind: (['file', 'dir', 'symlink', 'fifo', 'char', 'block', 'whiteout'] as const)[i % 7],
    mode: (i * 37) & 0o7777,
    uid: 4_000_000_000 - i,
    gid: i,
    size: i * 1_000_003,
    allocated: i * 512,
    mtimeSec: -1 + i * 11,
    mtimeNsec: 999_999_999 - i,
    ctimeSec: 1_700_000_000 + i,
    ctimeNsec: i,
    ino: 2 ** 52 + i,
    ...extra,
  };
}

describe('EntryTable', () => {
  it('gives back every field it was given, across chunks, rare fields included', () => {
    const n = 70_000; // past one 65536-entry chunk
    const given: Entry[] = [];
    const table = new EntryTable();
    for (let i = 0; i < n; i++) {
      const extra: Partial<Entry> =
        i % 1000 === 1
          ? {
              linkGroup: `2049:${i}`,
              linkTarget: Buffer.from(`../t${i}`),
              devMajor: i,
              devMinor: i + 1,
              xattrs: [['security.capability', Buffer.from([i & 255])]],
              content: Buffer.from(`c${i}`),
            }
          : {};
      const e = entry(i, extra);
      given.push(e);
      table.push(e);
    }
    expect(table.length).toBe(n);
    for (let i = 0; i < n; i += 997) expect(table.get(i)).toEqual(given[i]);
    expect(table.get(n - 1)).toEqual(given[n - 1]);
    expect(table.get(65_536)).toEqual(given[65_536]);
    expect(table.path(1001).toString()).toBe(given[1001].path.toString());
    expect(table.kind(1001)).toBe(given[1001].kind);
    expect(table.linkGroup(1001)).toBe('2049:1001');
    expect(table.linkGroup(1002)).toBeUndefined();
    expect(table.contentBytes()).toBe(given.reduce((s, e) => s + e.size, 0));
    expect(table.contentBytes([3, 5])).toBe(given[3].size + given[5].size);
    expect([...table].length).toBe(n);
  });

  it('keeps raw, non-UTF-8 path bytes, and paths longer than a slab', () => {
    const odd = Buffer.from([0x66, 0xff, 0xfe, 0x2f, 0x80]);
    const long = Buffer.alloc(3 * 1024 * 1024, 0x61);
    const table = EntryTable.from([entry(0, { path: odd }), entry(1, { path: long }), entry(2)]);
    expect(table.path(0).equals(odd)).toBe(true);
    expect(table.path(1).equals(long)).toBe(true);
    expect(table.path(2).toString()).toBe('dir2/name-2');
  });

  it('paths joined in the table are pushed without a copy, and stay right across slabs', () => {
    const table = new EntryTable();
    const parents: Buffer[] = [];
    for (let i = 0; i < 40_000; i++) {
      const parent = i % 100 === 0 ? null : parents[parents.length - 1];
      const p = table.join(parent, Buffer.from(`entry-with-a-longish-name-${i}`));
      if (i % 100 === 0) parents.push(p);
      table.push(entry(i, { path: p }));
    }
    for (let i = 0; i < 40_000; i += 99) {
      const top = Math.floor(i / 100) * 100;
      const expected =
        i === top
          ? `entry-with-a-longish-name-${i}`
          : `entry-with-a-longish-name-${top}/entry-with-a-longish-name-${i}`;
      expect(table.path(i).toString()).toBe(expected);
    }
  });

  it('replaceContent changes the size and the bytes, and leaves the hardlink group', () => {
    const table = EntryTable.from([entry(0, { linkGroup: '1:2' }), entry(7, { linkGroup: '1:2' })]);
    table.replaceContent(1, Buffer.from('scrubbed'));
    expect(table.get(1)).toMatchObject({ size: 8, content: Buffer.from('scrubbed') });
    expect(table.get(1).linkGroup).toBeUndefined();
    expect(table.get(0).linkGroup).toBe('1:2');
    // What get() returns is a copy: changing it changes nothing in the table.
    table.get(0).size = 5;
    expect(table.get(0).size).toBe(0);
  });
});
