import { describe, expect, it } from 'vitest';
import { fingerprint } from '../../src/layer/fingerprint.js';
import { MAX_LAYERS, partition, type LayerPlan } from '../../src/layer/partition.js';
import { EntryTable, type Entry } from '../../src/walk/entries.js';
import { makeEntries, type Spec } from './entries.js';

const TARGET = 64 * 1024;
const HEADER = 512;

/** A tree of some 200 files of 0-8 KB over a few nested directories, the same every time. */
function sample(): Spec[] {
  let seed = 7;
  const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
  const big = [
    'bin',
    'etc',
    'usr/bin',
    'usr/lib/python3/site',
    'usr/lib/x86_64',
    'usr/share/doc',
    'var/lib/apt',
    'opt/tool',
  ];
  const small = [
    'etc/ssl',
    'etc/apt/sources.list.d',
    'usr/lib/python3/site/pkg',
    'usr/share/zoneinfo/Europe',
    'var/log',
  ];
  const specs: Spec[] = [['tmp/', 0]];
  for (const [dirs, n] of [
    [big, 22],
    [small, 4],
  ] as const) {
    for (const d of dirs)
      for (let i = 0; i < n; i++) specs.push([`${d}/f${String(i).padStart(2, '0')}`, rnd(8000)]);
  }
  return specs;
}

const paths = (entries: Entry[], plans: LayerPlan[]) =>
  plans.map((p) => p.indices.map((i) => entries[i].path.toString()));

/** The first layer each path is in: a file's only one, a directory's own (later ones carry it). */
function layerOf(entries: Entry[], plans: LayerPlan[]): Map<string, number> {
  const m = new Map<string, number>();
  plans.forEach((p, l) =>
    p.indices.forEach((i) => m.has(entries[i].path.toString()) || m.set(entries[i].path.toString(), l)),
  );
  return m;
}

/** The directories above `p` (`a/b/c` → `a`, `a/b`), outermost first. */
function ancestorsOf(p: string): string[] {
  const parts = p.split('/');
  return parts.slice(1).map((_, k) => parts.slice(0, k + 1).join('/'));
}

/** Bytes of a subtree counted independently: a header per entry plus file sizes. */
function subtreeBytes(entries: Entry[], dir: string): number {
  return entries
    .filter((e) => e.path.toString() === dir || e.path.toString().startsWith(dir + '/'))
    .reduce((sum, e) => sum + HEADER + e.size, 0);
}

/**
 * Every entry is in a layer; each layer is ascending, each entry in it once, and holds every
 * directory of the table above its entries (what an overlay runtime would otherwise make up as
 * 0755 root:root). Nothing else is repeated: an entry that is not a directory is in one layer only,
 * and a directory is in one layer without anything below it at most (its own).
 */
function expectEachOnceAscending(entries: Entry[], plans: LayerPlan[]) {
  const all = new Set(plans.flatMap((p) => p.indices));
  expect([...all].sort((a, b) => a - b)).toEqual(entries.map((_, i) => i));
  const inTable = new Set(entries.map((e) => e.path.toString()));
  const layersOf = new Map<string, number>();
  const alone = new Map<string, number>();
  for (const p of plans) {
    expect(p.indices).toEqual([...new Set(p.indices)].sort((a, b) => a - b));
    const here = p.indices.map((i) => entries[i].path.toString());
    const held = new Set(here);
    for (const path of here) {
      layersOf.set(path, (layersOf.get(path) ?? 0) + 1);
      if (!here.some((q) => q.startsWith(path + '/'))) alone.set(path, (alone.get(path) ?? 0) + 1);
      for (const a of ancestorsOf(path).filter((a) => inTable.has(a)))
        expect(held.has(a), `${a} in the layer of ${path}`).toBe(true);
    }
  }
  for (const e of entries) {
    const path = e.path.toString();
    if (e.kind !== 'dir') expect(layersOf.get(path), path).toBe(1);
    else expect(alone.get(path) ?? 0, path).toBeLessThanOrEqual(1);
  }
}

describe('partition', () => {
  const entries = makeEntries(sample());
  const plans = partition(EntryTable.from(entries), TARGET);

  it('splits the sample into several layers, every entry exactly once, ascending inside a layer', () => {
    expect(plans.length).toBeGreaterThan(5);
    expectEachOnceAscending(entries, plans);
  });

  it('puts a directory in the same layer as its first child or earlier', () => {
    const layer = layerOf(entries, plans);
    for (const e of entries) {
      const p = e.path.toString();
      const parent = p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : null;
      if (parent) expect(layer.get(parent)!, p).toBeLessThanOrEqual(layer.get(p)!);
    }
  });

  it('keeps a subtree that fits the target in one layer', () => {
    const layer = layerOf(entries, plans);
    let checked = 0;
    for (const d of entries.filter((e) => e.kind === 'dir').map((e) => e.path.toString())) {
      if (subtreeBytes(entries, d) > TARGET) continue;
      checked++;
      const inside = entries.map((e) => e.path.toString()).filter((p) => p === d || p.startsWith(d + '/'));
      expect(new Set(inside.map((p) => layer.get(p))).size, d).toBe(1);
    }
    expect(checked).toBeGreaterThan(3);
  });

  it('a file that grows a little changes only the layer that holds it', () => {
    const grown = makeEntries(sample().map(([p, s]) => [p, p === 'usr/lib/python3/site/f05' ? s + 1 : s]));
    const after = partition(EntryTable.from(grown), TARGET);
    expect(paths(grown, after)).toEqual(paths(entries, plans));
    const holder = layerOf(entries, plans).get('usr/lib/python3/site/f05');
    const changed = plans
      .map((p, l) => [
        l,
        fingerprint(EntryTable.from(entries), p.indices, 'gzip', 1) !==
          fingerprint(EntryTable.from(grown), after[l].indices, 'gzip', 1),
      ])
      .filter(([, c]) => c)
      .map(([l]) => l);
    expect(changed).toEqual([holder]);
  });

  it('a file that grows past the target leaves layers outside its directory alone', () => {
    const dir = 'usr/lib/python3/site';
    const grown = makeEntries(sample().map(([p, s]) => [p, p === `${dir}/f05` ? s + 3 * TARGET : s]));
    // Precondition: the directory and its parents were already split before the change.
    for (const d of ['usr', 'usr/lib', 'usr/lib/python3', dir])
      expect(subtreeBytes(entries, d)).toBeGreaterThan(TARGET);
    const outside = (ps: string[]) => ps.every((p) => !p.startsWith(dir + '/'));
    const before = paths(entries, plans).filter(outside);
    const after = paths(grown, partition(EntryTable.from(grown), TARGET)).filter(outside);
    expect(after).toEqual(before);
    expect(before.length).toBeGreaterThan(3);
  });

  it('moves hardlink group members into one layer, still once each', () => {
    const layer = layerOf(entries, plans);
    const [a, b, c] = ['bin/f01', 'usr/share/doc/f03', 'opt/tool/f20'];
    expect(new Set([layer.get(a), layer.get(b), layer.get(c)]).size).toBe(3); // precondition
    const linked = makeEntries(
      sample().map(([p, s]): Spec => [p, s, [a, b, c].includes(p) ? { linkGroup: '2049:1234' } : undefined]),
    );
    const out = partition(EntryTable.from(linked), TARGET);
    expectEachOnceAscending(linked, out);
    const l2 = layerOf(linked, out);
    expect(new Set([l2.get(a), l2.get(b), l2.get(c)])).toEqual(new Set([l2.get(a)]));
    // The latest layer of any member decides: no later whiteout can then hide a moved member.
    expect(l2.get(a)).toBe(Math.max(layer.get(a)!, layer.get(b)!, layer.get(c)!));
    // Moved members bring the directories above them.
    const home = new Set(paths(linked, out)[l2.get(a)!]);
    for (const d of [a, b, c].flatMap(ancestorsOf)) expect(home.has(d), d).toBe(true);
  });

  it('never makes more than MAX_LAYERS layers', () => {
    const many = makeEntries(
      Array.from({ length: 3000 }, (_, i): Spec => [`d${i % 40}/f${i}`, TARGET - HEADER]),
    );
    const out = partition(EntryTable.from(many), TARGET);
    expect(out.length).toBeLessThanOrEqual(MAX_LAYERS);
    expect(out.length).toBeGreaterThan(MAX_LAYERS / 2); // the target doubles, no more than needed
    expectEachOnceAscending(many, out);
  });

  const unit = TARGET / 12;
  /** srv/pkgs (with an owner, mode and mtime of its own) is split, and srv/pkgs/deep inside it. */
  const splitTree = (pkgsMode = 0o750) => {
    const owned = { mode: pkgsMode, uid: 1000, gid: 1000, mtimeSec: 1_500_000_000 };
    return makeEntries([
      ['etc/f', 100],
      ['srv/pkgs/', 0, owned],
      ['srv/pkgs/a', 5 * unit],
      ['srv/pkgs/b', 8 * unit],
      ['srv/pkgs/c', 3 * unit],
      ['srv/pkgs/deep/', 0, { ...owned, mode: 0o1777 }],
      ['srv/pkgs/deep/x', 7 * unit],
      ['srv/pkgs/deep/y', 7 * unit],
      ['srv/z', 10],
    ]);
  };

  it('a split directory, and one split inside it, is carried with its parents by each of its layers', () => {
    const tree = splitTree();
    const out = partition(EntryTable.from(tree), TARGET);
    expectEachOnceAscending(tree, out);
    expect(paths(tree, out)).toEqual([
      ['etc', 'etc/f'],
      // No layer of `srv` alone: its first child is split too, and every layer below carries it.
      ['srv', 'srv/pkgs', 'srv/pkgs/a'],
      ['srv', 'srv/pkgs', 'srv/pkgs/b', 'srv/pkgs/c'],
      ['srv', 'srv/pkgs', 'srv/pkgs/deep', 'srv/pkgs/deep/x'],
      ['srv', 'srv/pkgs', 'srv/pkgs/deep', 'srv/pkgs/deep/y'],
      ['srv', 'srv/z'],
    ]);
    // The same entries, not made-up ones: a chmod of a split directory changes every layer carrying it.
    const pkgs = tree.findIndex((e) => e.path.toString() === 'srv/pkgs');
    for (const p of out.slice(1, 5)) expect(p.indices).toContain(pkgs);
    // A carried directory counts as the header it adds.
    expect(out[2].bytes).toBe(4 * HEADER + 11 * unit);
  });

  it('a chmod of a split directory changes the fingerprint of every layer carrying it, and of no other', () => {
    const [before, after] = [splitTree(0o750), splitTree(0o700)];
    const [plansBefore, plansAfter] = [before, after].map((t) => partition(EntryTable.from(t), TARGET));
    expect(paths(after, plansAfter)).toEqual(paths(before, plansBefore));
    const changed = plansBefore
      .map((_, l) => l)
      .filter(
        (l) =>
          fingerprint(EntryTable.from(before), plansBefore[l].indices, 'gzip', 1) !==
          fingerprint(EntryTable.from(after), plansAfter[l].indices, 'gzip', 1),
      );
    const carrying = paths(before, plansBefore)
      .map((ps, l) => (ps.includes('srv/pkgs') ? l : -1))
      .filter((l) => l >= 0);
    expect(carrying).toHaveLength(4);
    expect(changed).toEqual(carrying);
  });

  it('carries the nearest directories a change set has, when it lacks some above them', () => {
    const full = makeEntries([
      ['opt/tool/a', TARGET / 2],
      ['opt/tool/b', TARGET / 2],
      ['opt/tool/.wh.gone', 0, { kind: 'whiteout' }],
    ]);
    const changes = full.filter((e) => e.path.toString() !== 'opt'); // a change set without `opt`
    const out = partition(EntryTable.from(changes), TARGET);
    expectEachOnceAscending(changes, out);
    expect(paths(changes, out)).toEqual([
      ['opt/tool', 'opt/tool/.wh.gone', 'opt/tool/a'],
      ['opt/tool', 'opt/tool/b'],
    ]);
  });

  it('adds nothing where no directory is split: each layer holds whole subtrees, as packed', () => {
    // Top-level directories of a third to two thirds of the target each, packed in name order.
    const specs: Spec[] = [];
    for (let d = 0; d < 9; d++)
      for (let f = 0; f < 4; f++) specs.push([`d${d}/sub/f${f}`, ((d % 3) + 2) * (TARGET / 24)]);
    const tree = makeEntries(specs);
    const out = partition(EntryTable.from(tree), TARGET);
    // Derived independently: whole top-level subtrees, packed greedily up to the target.
    const tops = [...new Set(tree.map((e) => e.path.toString().split('/')[0]))];
    const expected: string[][] = [];
    let bytes = Infinity;
    for (const top of tops) {
      const size = subtreeBytes(tree, top);
      if (bytes + size > TARGET) {
        expected.push([]);
        bytes = 0;
      }
      bytes += size;
      expected[expected.length - 1].push(
        ...tree.map((e) => e.path.toString()).filter((p) => p === top || p.startsWith(top + '/')),
      );
    }
    expect(expected.length).toBeGreaterThan(3);
    expect(paths(tree, out)).toEqual(expected);
    expect(out.map((p) => p.bytes)).toEqual(
      expected.map((ps) => ps.filter((p) => !p.includes('/')).reduce((n, t) => n + subtreeBytes(tree, t), 0)),
    );
    expectEachOnceAscending(tree, out);
    expect(out.flatMap((p) => p.indices)).toHaveLength(tree.length);
  });

  it('a tree under the target is one layer', () => {
    const small = makeEntries([
      ['a/b', 10],
      ['c', 20],
      ['d/', 0],
    ]);
    const out = partition(EntryTable.from(small), TARGET);
    expect(out).toHaveLength(1);
    expect(out[0].indices).toEqual(small.map((_, i) => i));
  });
});
