#!/usr/bin/env node
// Benchmark of the bundled CLI (dist/index.js) against the standard tools doing similar work.
// Not part of the tests: run it by hand with `npm run bench` (see bench/README.md). This runner picks
// the figures, prepares their inputs, runs each (bench/figures/) and writes the results section.
//
// Environment:
//   BENCH_RUNS=3          timed runs of each side per figure (median reported)
//   BENCH_ONLY=P1,P3      figures to run: P1 (= P1-gzip, P1-gzip6, P1-zstd), P1-gzip, P1-gzip6, P1-zstd, P5, P2, P3, P7;
//                         P4 (memory) and SCALE (time per entry) run only when named: they build ~9 GB of trees
//   BENCH_SYNTH_DIV=1     P4/SCALE/P7: divide the synthetic trees' entries and bytes by this (100: a quick check)
//   BENCH_NODE_ARGS=…     P4/SCALE: extra node options for ours, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`
//   BENCH_TREE=NAME       input tree: mixed (default: like the real root, ~3.4 GB, ≥ 140k entries, 45 %
//                         already compressed), rootfs+usrlib (no compressed files) or small (checks the bench itself)
//   BENCH_QUIET_WAIT=30   seconds to wait at most, before each timed run, for other processes to leave the CPU
//   BENCH_NODE=PATH       node for ours (default: Node 24, the action's runtime; zstd always uses Node 24)
//   BENCH_NO_RESULTS=1    print the table but do not append it to bench/RESULTS.md

import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { p1Compress } from './figures/p1-compress.mjs';
import { p2Diff } from './figures/p2-diff.mjs';
import { p3Resnapshot } from './figures/p3-resnapshot.mjs';
import { p4Memory } from './figures/p4-memory.mjs';
import { p5Push } from './figures/p5-push.mjs';
import { p7SmallFiles } from './figures/p7-small-files.mjs';
import { scale } from './figures/scale.mjs';
import { chain } from './figures/chain.mjs';
import { count, du, must, q, sh } from './shared/exec.mjs';
import { REPO, WORK, log } from './shared/paths.mjs';
import { appendResults, resultsMarkdown } from './shared/results.mjs';
import { distHash, loadAverage, machine, node24, snapshotDist } from './shared/runtime.mjs';
import { composition } from './shared/composition.mjs';
import { synthPlan } from './shared/synth-trees.mjs';
import { TREES, mixedTreeMisses, warmCache } from './shared/trees.mjs';

const RUNS = Math.max(1, Number.parseInt(process.env.BENCH_RUNS ?? '3', 10) || 3);
const QUIET_WAIT = Number.parseInt(process.env.BENCH_QUIET_WAIT ?? '30', 10);
const TREE_NAME = process.env.BENCH_TREE || 'mixed';
const SYNTH_DIV = Math.max(1, Number(process.env.BENCH_SYNTH_DIV ?? '1') || 1);
const NODE_ARGS = (process.env.BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
const ONLY = process.env.BENCH_ONLY
  ? process.env.BENCH_ONLY.split(/[\s,]+/)
      .filter(Boolean)
      .map((s) => s.toUpperCase())
  : null;

/** What BENCH_ONLY can name, in the order the bench lists them. */
const FIGURES = ['P1-gzip', 'P1-gzip6', 'P1-zstd', 'P5', 'P2', 'P3', 'P7', 'P4', 'SCALE', 'CHAIN'];
/** Figures that run only when BENCH_ONLY names them exactly (not in the default run, not by prefix). */
const OPT_IN = ['P4', 'SCALE', 'CHAIN'];
/** Figures that run on the BENCH_TREE tree; P7, P4, SCALE and CHAIN make their own. */
const ON_MAIN_TREE = ['P1-gzip', 'P1-gzip6', 'P1-zstd', 'P5', 'P2', 'P3'];
const wanted = (key) =>
  OPT_IN.includes(key.toUpperCase())
    ? !!ONLY && ONLY.includes(key.toUpperCase())
    : !ONLY || ONLY.some((t) => key.toUpperCase() === t || key.toUpperCase().startsWith(t + '-'));

/**
 * The figures in the order they run, each given its inputs (`main`: the tree and ours, `synth`: the
 * synthetic trees' plan and ours) and what it needs of those run before it (`done`, by key). Each
 * returns { rows | sections, details, problems, synthTrees?, … }. P2 before P5 (as always run).
 */
const STEPS = [
  ['P1-gzip', ({ main }) => p1Compress('P1-gzip', main)],
  ['P1-gzip6', ({ main }, done) => p1Compress('P1-gzip6', { ...main, gzip1Size: done['P1-gzip']?.size })],
  ['P1-zstd', ({ main }) => p1Compress('P1-zstd', main)],
  ['P2', ({ main }) => p2Diff(main)],
  ['P5', ({ main }, done) => p5Push({ ...main, gzip1Layout: done['P1-gzip']?.layout })],
  ['P3', ({ main }) => p3Resnapshot(main)],
  ['P7', ({ synth, main }) => p7SmallFiles({ ...synth, home: main.home })],
  ['P4', ({ synth }) => p4Memory(synth)],
  ['SCALE', ({ synth }, done) => scale({ ...synth, p4Low: done.P4?.low })],
  ['CHAIN', ({ main }) => chain(main)],
];

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => process.exit(130)); // runs the exit hook that kills our registries
}

async function main() {
  const started = Date.now();
  const figures = FIGURES.filter(wanted);
  if (!figures.length)
    throw new Error(`BENCH_ONLY=${process.env.BENCH_ONLY} names no figure (${FIGURES.join(', ')})`);
  const onMainTree = figures.some((f) => ON_MAIN_TREE.includes(f));
  const treeFn = TREES[TREE_NAME];
  if (!treeFn) throw new Error(`unknown BENCH_TREE ${TREE_NAME} (${Object.keys(TREES).join(', ')})`);
  await mkdir(WORK, { recursive: true });
  const m = await machine();
  const loadStart = loadAverage();
  log(`figures ${figures.join(', ')}; ${RUNS} runs each${onMainTree ? `; tree ${TREE_NAME}` : ''}`);

  const tree = onMainTree ? await treeFn() : null;
  const [treeBytes, treePaths] = tree ? await Promise.all([du(tree), count(tree)]) : [NaN, NaN];
  if (tree && treeBytes < 1e9) log(`warning: tree is only ${treeBytes} bytes`);
  const dist = await snapshotDist();
  const home = await mkdtemp(path.join(WORK, 'home-'));
  // Ours runs on the action's runtime; BENCH_NODE=… measures another (zstd needs Node 22.15+).
  const node = process.env.BENCH_NODE || (await node24());
  const nodeVersion = (await must(node, ['--version'])).stdout.trim();
  let tarBytes = NaN;
  let made = null;
  if (tree) {
    await warmCache(tree);
    tarBytes = Number((await sh(`tar -cf - -C ${q(tree)} . | wc -c`)).stdout.trim());
    made = composition(tree); // from the page cache: a few seconds
  }

  const ours = { node, cli: dist.cli, runs: RUNS, quietWait: QUIET_WAIT };
  const inputs = {
    main: { ...ours, nodeVersion, pre: dist.pre, home, tree, tarBytes },
    synth: { ...ours, nodeArgs: NODE_ARGS, plan: synthPlan(SYNTH_DIV) },
  };
  const done = {};
  const results = [];
  if (TREE_NAME === 'mixed' && made)
    results.push({
      problems: mixedTreeMisses(made).map(
        (miss) => `tree mixed: ${miss} (see MIXED_COPIES and MIXED_DEBS in bench/shared/trees.mjs)`,
      ),
    });
  for (const [key, run] of STEPS) {
    if (!figures.includes(key)) continue;
    try {
      done[key] = await run(inputs, done);
      results.push(done[key]);
    } catch (err) {
      // a figure that throws is reported under Problems and the others still run
      results.push({
        problems: [`${key}: the bench itself failed: ${String(err?.stack ?? err).slice(0, 500)}`],
      });
      log(`${key} FAILED:`, err);
    }
  }

  await rm(home, { recursive: true, force: true });
  await rm(path.join(WORK, 'out'), { recursive: true, force: true });
  const distNow = await distHash(path.join(REPO, 'dist'));
  if (distNow !== dist.hash)
    log(`note: dist/index.js changed during the run (now ${distNow}); all runs used the copy ${dist.hash}`);

  const all = (field) => results.flatMap((r) => r[field] ?? []);
  const md = resultsMarkdown({
    machine: m,
    load: { start: loadStart, end: loadAverage() },
    minutes: ((Date.now() - started) / 60000).toFixed(1),
    runs: RUNS,
    ours: { node, nodeVersion, node24: done['P1-zstd']?.node24, dist, nodeArgs: NODE_ARGS },
    input: {
      tree: tree && {
        name: TREE_NAME,
        bytes: treeBytes,
        paths: treePaths,
        entries: results
          .map((r) => r.entries)
          .filter(Boolean)
          .at(-1),
        tarBytes,
        composition: made,
      },
      synthTrees: all('synthTrees'),
      notes: all('inputNotes'),
    },
    figures: {
      rows: all('rows'),
      sections: all('sections'),
      details: all('details'),
      problems: all('problems'),
    },
  });
  console.log('\n' + md);
  if (!process.env.BENCH_NO_RESULTS) await appendResults(md);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
