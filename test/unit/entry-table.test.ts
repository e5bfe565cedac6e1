import { describe, expect, it } from 'vitest';
import { EntryTable, NO_PARENT, type Entry } from '../../src/walk/entries.js';

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

/** What a table gives back: everything but the allocated size, which only the walk reads. */
function kept(e: Entry): Entry {
  const rest = { ...e };
  delete rest.allocated;
  return rest;
}

describe('EntryTable', () => {
  it('gives back every field it was given, across chunks, rare fields included', () => {
    const n = 70_000; // past one 65536-entry chunk
    const given: Entry[] = [];
    const table = new EntryTable(true);
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
    for (let i = 0; i < n; i += 997) expect(table.get(i)).toEqual(kept(given[i]));
    expect(table.get(n - 1)).toEqual(kept(given[n - 1]));
    expect(table.get(65_536)).toEqual(kept(given[65_536]));
    expect(table.path(1001).toString()).toBe(given[1001].path.toString());
    expect(table.kind(1001)).toBe(given[1001].kind);
    expect(table.linkGroup(1001)).toBe('2049:1001');
    expect(table.linkGroup(1002)).toBeUndefined();
    expect(table.contentBytes()).toBe(given.reduce((s, e) => s + e.size, 0));
    expect(table.contentBytes([3, 5])).toBe(given[3].size + given[5].size);
    expect([...table].length).toBe(n);
  });

  it('leaves out ctime and inode unless asked to keep them, and keeps everything else', () => {
    const given = [entry(1), entry(70_001, { linkGroup: '5:6' })];
    const lean = EntryTable.from(given);
    expect(lean.keepsIdentity).toBe(false);
    expect(lean.get(1)).toEqual({ ...kept(given[1]), ctimeSec: 0, ctimeNsec: 0, ino: 0 });
    expect(EntryTable.from(given, true).get(1)).toEqual(kept(given[1]));
  });

  it('keeps raw, non-UTF-8 path bytes, and paths longer than a slab', () => {
    const odd = Buffer.from([0x66, 0xff, 0xfe, 0x2f, 0x80]);
    const long = Buffer.alloc(3 * 1024 * 1024, 0x61);
    const table = EntryTable.from([entry(0, { path: odd }), entry(1, { path: long }), entry(2)]);
    expect(table.path(0).equals(odd)).toBe(true);
    expect(table.path(1).equals(long)).toBe(true);
    expect(table.path(2).toString()).toBe('dir2/name-2');
  });

  it('builds paths from names under their parents, in walk order and out of it', () => {
    // A tree of 40,000 entries, three levels deep, pushed in walk order with each entry's parent.
    const table = new EntryTable();
    const paths: string[] = [];
    const push = (path: string, parent: number, kind: Entry['kind']) => {
      table.push(entry(paths.length, { path: Buffer.from(path), kind }), parent);
      paths.push(path);
      return paths.length - 1;
    };
    for (let a = 0; paths.length < 40_000; a++) {
      const top = push(`top-${a}`, NO_PARENT, 'dir');
      for (let b = 0; b < 20; b++) {
        const mid = push(`top-${a}/mid-${b}`, top, 'dir');
        for (let c = 0; c < 10; c++) push(`top-${a}/mid-${b}/leaf-${c}`, mid, 'file');
      }
      push(`top-${a}/\xff-after`, top, 'file');
    }
    expect([...table].map((e) => e.path.toString())).toEqual(paths);
    // Out of order, so the chain of built directories is rebuilt again and again.
    for (let i = paths.length - 1; i >= 0; i -= 97) expect(table.path(i).toString()).toBe(paths[i]);
    for (const i of [5, 39_999, 0, 231, 230, 17_000]) expect(table.path(i).toString()).toBe(paths[i]);
    for (const i of [0, 1, 2, 231, 39_999]) {
      const path = paths[i];
      expect(table.dirOf(i).toString()).toBe(path.slice(0, Math.max(path.lastIndexOf('/'), 0)));
      expect(table.name(i).toString()).toBe(path.slice(path.lastIndexOf('/') + 1));
    }
    expect(() => table.push(entry(0, { path: Buffer.from('elsewhere/x') }), 1)).toThrow(/not named in/);
  });

  it('keeps link targets in its slabs', () => {
    const table = new EntryTable();
    const target = Buffer.from([0x2e, 0x2e, 0x2f, 0xff]);
    const kept = table.keep(target);
    target[0] = 0;
    expect([...kept]).toEqual([0x2e, 0x2e, 0x2f, 0xff]);
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
