// Ours alone on a synthetic tree (P4, SCALE): one dry run to a fresh layout, and the summary of a series.
import { mkdtemp, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { cleanEnv, failureText, timed } from './exec.mjs';
import { BENCH, WORK, log } from './paths.mjs';
import { f1, f2, median } from './table.mjs';

/** One layer: the whole tree (5 GB of content + 512 B per entry of headers) stays below it. */
export const SYNTH_LAYER_SIZE = '8GiB';
const MEMWATCH = path.join(BENCH, 'memwatch.mjs');

/**
 * Runs ours once on a synthetic tree (P4's: with its big files in place), dry run to a fresh layout,
 * with bench/memwatch.mjs preloaded. The result carries the phases ours printed and `problems`.
 */
export async function synthRun(tree, { node, cli, nodeArgs, quietWait }) {
  const out = path.join(WORK, 'out', 'synth');
  const home = await mkdtemp(path.join(WORK, 'home-synth-'));
  const memFile = path.join(home, 'memwatch.json');
  await rm(out, { recursive: true, force: true });
  if (tree.mount) await rename(path.join(tree.dir, `big-${tree.mount}`), path.join(tree.root, 'srv', 'big'));
  let r;
  try {
    r = await timed(
      node,
      [
        '--import',
        MEMWATCH,
        ...nodeArgs,
        cli,
        '--root',
        tree.root,
        '--dry-run',
        '--output',
        out,
        '--compression',
        'gzip',
        '--compression-level',
        '1',
        '--layer-size',
        SYNTH_LAYER_SIZE,
      ],
      { env: cleanEnv({ HOME: home, BENCH_MEMWATCH_FILE: memFile }), quietWait },
    );
  } finally {
    if (tree.mount)
      await rename(path.join(tree.root, 'srv', 'big'), path.join(tree.dir, `big-${tree.mount}`));
  }
  r.mem = JSON.parse(await readFile(memFile, 'utf8').catch(() => 'null'));
  r.entries = Number(/^(\d+) entries, .* in /m.exec(r.stdout)?.[1] ?? NaN);
  const phase = (label) =>
    Number(new RegExp(`^\\s+${label}\\s+([\\d.]+) s$`, 'm').exec(r.stdout)?.[1] ?? NaN);
  r.phases = { walk: phase('walk and changes'), layers: phase('layers'), total: phase('total') };
  await rm(out, { recursive: true, force: true });
  await rm(home, { recursive: true, force: true });
  r.problems = [];
  if (r.code !== 0) {
    r.problems.push(`${tree.label}: ours ${failureText(r)}`);
    log(`  ours FAILED: ${failureText(r)}`);
  } else {
    if (r.entries !== tree.stats.entries)
      r.problems.push(`${tree.label}: ours walked ${r.entries} entries, the tree has ${tree.stats.entries}`);
    if (r.outputs.layers !== '1') r.problems.push(`${tree.label}: ${r.outputs.layers} layers, 1 expected`);
    log(
      `  ${r.wall.toFixed(2)} s (walk ${f1(r.phases.walk)} s, layers ${f1(r.phases.layers)} s), ${r.rssMiB.toFixed(0)} MiB, ` +
        `others used ${f2(r.others)} cores`,
    );
  }
  return r;
}

/** Median wall, max RSS and the other figures over a series of synthetic runs. */
export function summarize(tree, runs) {
  const ok = runs.filter((r) => r.code === 0);
  const all = ok.length === runs.length && ok.length > 0;
  const wall = all ? median(ok.map((r) => r.wall)) : NaN;
  const peak = ok.length ? ok.reduce((a, b) => (b.rssMiB > a.rssMiB ? b : a)) : null;
  const rssBytes = peak ? peak.rssMiB * 1024 * 1024 : NaN;
  return {
    tree,
    runs,
    entries: tree.stats.entries,
    bytes: tree.stats.bytes,
    wall,
    walk: all ? median(ok.map((r) => r.phases.walk)) : NaN,
    layers: all ? median(ok.map((r) => r.phases.layers)) : NaN,
    rssBytes,
    mem: peak?.mem?.atPeak ?? null,
    others: median(runs.map((r) => r.others)),
  };
}

/** The per-run line of a summary, under "Runs (wall, s)". */
export function synthDetail(s) {
  const ok = (r, f) => (r.code === 0 ? f(r) : `fail(${r.code})`);
  return (
    `- ${s.tree.label}: wall ${s.runs.map((r) => ok(r, (x) => x.wall.toFixed(2))).join(' / ')} s; ` +
    `walk ${s.runs.map((r) => f1(r.phases.walk)).join(' / ')} s; layers ${s.runs.map((r) => f1(r.phases.layers)).join(' / ')} s; ` +
    `user+sys ${s.runs.map((r) => f1(r.cpu)).join(' / ')} s; peak RSS ${s.runs.map((r) => f1(r.rssMiB)).join(' / ')} MiB; ` +
    `other processes' CPU ${f2(s.others)} cores (median)`
  );
}
