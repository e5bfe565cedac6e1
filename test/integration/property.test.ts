// Property: whatever the tree, a capture unpacks (umoci) to the same tree, and a capture of changes
// on top of its base unpacks to the changed tree. Trees come from a seeded generator; several cases
// share one capture (each in its own directory) and each mismatch is reported with its case's seed.
//
//   PROPERTY_SEED=<n>   first seed (default: random, printed); case i has seed n+i
//   PROPERTY_CASES=<n>  how many cases (default 336); PROPERTY_BATCH=<n> cases per capture (24)
//   To replay one case: PROPERTY_SEED=<its seed> PROPERTY_CASES=1 npx vitest run test/integration/property.test.ts
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { runAction, type ActionResult } from '../helpers/action.js';
import { pushLayout, unpack } from '../helpers/image.js';
import { Random, TreeBuilder } from '../helpers/random-tree.js';
import { startRegistry, type Registry } from '../helpers/registry.js';
import { cleanupAll, tmpDir } from '../helpers/tools.js';
import { diffTrees, snapshotTree, type TreeSnapshot } from '../helpers/tree.js';

const CASES = Number(process.env.PROPERTY_CASES ?? 336);
const BATCH = Number(process.env.PROPERTY_BATCH ?? 24);
const SEED = process.env.PROPERTY_SEED
  ? Number(process.env.PROPERTY_SEED)
  : Math.floor(Math.random() * 2 ** 31);

const batches: number[][] = [];
for (let i = 0; i < CASES; i += BATCH)
  batches.push(Array.from({ length: Math.min(BATCH, CASES - i) }, (_, j) => SEED + i + j));

let registry: Registry;

beforeAll(async () => {
  console.log(`property test: PROPERTY_SEED=${SEED} PROPERTY_CASES=${CASES}`);
  registry = await startRegistry();
});
afterAll(cleanupAll);

/** The part of a snapshot below `dir` (its own entry as "."), hardlink groups re-rooted; no sockets. */
function below(snap: TreeSnapshot, dir: string): TreeSnapshot {
  const out: TreeSnapshot = new Map();
  const prefix = `${dir}/`;
  const strip = (k: string) => (k === dir ? '.' : k.slice(prefix.length));
  for (const [key, info] of snap) {
    if (key !== dir && !key.startsWith(prefix)) continue;
    if (info.type === 'socket') continue;
    const copy = { ...info };
    if (copy.hardlinkGroup)
      copy.hardlinkGroup = JSON.stringify((JSON.parse(copy.hardlinkGroup) as string[]).map(strip));
    out.set(strip(key), copy);
  }
  return out;
}

const ALL_FEATURES = [
  'block',
  'char',
  'dir',
  'fifo',
  'file',
  'socket',
  'symlink',
  'empty file',
  'hardlink',
  'user xattr',
  'security.capability',
  'suid',
  'sgid',
  'sticky',
  'uid > 65535',
  'gid > 65535',
  'nanosecond mtime',
  'non-UTF-8 name',
  '255-byte name',
  'unicode name',
].sort();

/** What a snapshot holds, by feature. */
function coverage(snap: TreeSnapshot): string[] {
  const seen = new Set<string>();
  for (const [key, e] of snap) {
    seen.add(e.type);
    if (e.type === 'file' && e.size === 0) seen.add('empty file');
    if (e.hardlinkGroup) seen.add('hardlink');
    if (Object.keys(e.xattrs).some((n) => n.startsWith('user.'))) seen.add('user xattr');
    if (e.xattrs['security.capability']) seen.add('security.capability');
    if (e.mode & 0o4000) seen.add('suid');
    if (e.mode & 0o2000) seen.add('sgid');
    if (e.mode & 0o1000) seen.add('sticky');
    if (e.uid > 65535) seen.add('uid > 65535');
    if (e.gid > 65535) seen.add('gid > 65535');
    if (!e.mtimeNs.endsWith('000000000')) seen.add('nanosecond mtime');
    const bytes = Buffer.from(key, 'latin1');
    if (!Buffer.from(bytes.toString('utf8')).equals(bytes)) seen.add('non-UTF-8 name');
    else if (/[^\x00-\x7f]/.test(bytes.toString('utf8'))) seen.add('unicode name');
    if (key.split('/').some((c) => c.length === 255)) seen.add('255-byte name');
  }
  return ALL_FEATURES.filter((f) => seen.has(f));
}

interface Failure {
  seed: number;
  phase: string;
  diffs: string[];
}

function compare(
  phase: string,
  seeds: number[],
  source: TreeSnapshot,
  image: TreeSnapshot,
  failures: Failure[],
) {
  for (const seed of seeds) {
    const diffs = diffTrees(below(source, `c${seed}`), below(image, `c${seed}`));
    if (diffs.length) failures.push({ seed, phase, diffs: diffs.slice(0, 8) });
  }
}

function expectOk(r: ActionResult, seeds: number[], what: string): void {
  const where = `${what} of seeds ${seeds[0]}..${seeds.at(-1)} failed:\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-2000)}`;
  expect(r.errors, where).toEqual([]);
  expect(r.code, where).toBe(0);
}

describe('random trees', () => {
  it.each(batches.map((seeds, i) => [i, seeds[0], seeds.at(-1)!, seeds] as const))(
    'batch %i: seeds %i..%i capture and change faithfully',
    async (index, _first, _last, seeds) => {
      const work = await tmpDir('property');
      const root = path.join(work, 'root');
      await mkdir(root);
      const builder = new TreeBuilder();
      for (const seed of seeds) builder.addTree(Buffer.from(path.join(root, `c${seed}`)), new Random(seed));
      await builder.finish();
      const failures: Failure[] = [];
      const source = await snapshotTree(root);
      // The generator did its job: every kind of entry and metadata is in the batch (a generator
      // that silently stopped making one would leave it untested).
      if (seeds.length === BATCH && BATCH >= 24) expect(coverage(source)).toEqual(ALL_FEATURES);

      // 1. The whole tree, captured and unpacked.
      const layout = path.join(work, 'layout');
      const compression = index % 2 ? 'none' : 'gzip';
      const r = await runAction({ root, 'dry-run': 'true', output: layout, compression });
      expectOk(r, seeds, 'the capture');
      compare('capture', seeds, source, await snapshotTree(await unpack(layout)), failures);

      // 2. That image as the base, a baseline, random changes, and a capture of the changes only.
      const base = `${registry.host}/property/batch${index}:base`;
      await pushLayout(layout, 'latest', base);
      const baseline = path.join(work, 'baseline.gz');
      const pre = await runAction({ root, 'base-image': base, baseline, 'dry-run': 'true' }, { pre: true });
      expectOk(pre, seeds, 'the pre step');
      for (const seed of seeds)
        builder.change(Buffer.from(path.join(root, `c${seed}`)), new Random(seed ^ 0x5bd1e995));
      await builder.finish();
      const changed = path.join(work, 'changed');
      const r2 = await runAction({
        root,
        'base-image': base,
        changes: 'baseline',
        baseline,
        'dry-run': 'true',
        output: changed,
        compression,
      });
      expectOk(r2, seeds, 'the capture of changes');
      expect(r2.outputs.changes).toBe('baseline');
      compare(
        'changes',
        seeds,
        await snapshotTree(root),
        await snapshotTree(await unpack(changed)),
        failures,
      );

      const report = failures.map(
        (f) =>
          `seed ${f.seed} (${f.phase}; replay: PROPERTY_SEED=${f.seed} PROPERTY_CASES=1):\n  ${f.diffs.join('\n  ')}`,
      );
      expect(report, `PROPERTY_SEED=${SEED}`).toEqual([]);
    },
  );
});
