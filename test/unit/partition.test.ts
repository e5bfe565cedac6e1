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

function layerOf(entries: Entry[], plans: LayerPlan[]): Map<string, number> {
  const m = new Map<string, number>();
  plans.forEach((p, l) => p.indices.forEach((i) => m.set(entries[i].path.toString(), l)));
  return m;
}

/** Bytes of a subtree counted independently: a header per entry plus file sizes. */
function subtreeBytes(entries: Entry[], dir: string): number {
  return entries
    .filter((e) => e.path.toString() === dir || e.path.toString().startsWith(dir + '/'))
    .reduce((sum, e) => sum + HEADER + e.size, 0);
}

function expectEachOnceAscending(entries: Entry[], plans: LayerPlan[]) {
  const all = plans.flatMap((p) => p.indices);
  expect([...all].sort((a, b) => a - b)).toEqual(entries.map((_, i) => i));
  for (const p of plans) expect(p.indices).toEqual([...p.indices].sort((a, b) => a - b));
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
