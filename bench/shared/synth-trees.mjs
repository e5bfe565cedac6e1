// The synthetic trees of P4 and SCALE (written by bench/synth-tree.mjs), built once under
// bench/.work/trees and kept; every size divided by BENCH_SYNTH_DIV for a quick check.
import { existsSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { diskUse, must } from './exec.mjs';
import { BENCH, WORK, log } from './paths.mjs';
import { count3, size } from './table.mjs';
import { cached } from './trees.mjs';

const SYNTH_SCRIPT = path.join(BENCH, 'synth-tree.mjs');
const BYTES_PER_ENTRY = 500;
const BIG_FILES = 8;

/**
 * The sizes of the synthetic trees, divided by `div`. P4: 1M entries, with 5 GB of content and with
 * 1/10 of it (same entries, smaller big files). SCALE: these entry counts at P4's low mix (500 B of
 * content per entry); the largest is P4's low tree. P7: 200k entries of small files only.
 */
export function synthPlan(div) {
  return {
    p4Entries: Math.round(1_000_000 / div),
    p4Bytes: { high: Math.round(5e9 / div), low: Math.round(0.5e9 / div) },
    scaleEntries: [10_000, 100_000, 1_000_000].map((n) => Math.round(n / div)),
    p7Entries: Math.round(200_000 / div),
  };
}

async function synth(args) {
  const r = await must('node', [SYNTH_SCRIPT, ...args.map(String)]);
  return JSON.parse(r.stdout.trim().split('\n').at(-1));
}

/**
 * A synthetic tree kept in `WORK/trees/NAME` as `root/` and `stats.json`: `write(root)` writes it and
 * gives its { entries, bytes }.
 */
async function synthTree(name, what, write) {
  const dir = await cached(path.join(WORK, 'trees', name), async (tmp) => {
    const t0 = Date.now();
    log(`building ${what}…`);
    const { entries, bytes } = await write(path.join(tmp, 'root'));
    const stats = { entries, bytes, buildSeconds: (Date.now() - t0) / 1000, disk: await diskUse(tmp) };
    await writeFile(path.join(tmp, 'stats.json'), JSON.stringify(stats));
    log(`  built in ${stats.buildSeconds.toFixed(0)} s`);
    return JSON.stringify(stats);
  });
  const stats = JSON.parse(await readFile(path.join(dir, 'stats.json'), 'utf8'));
  return { dir, root: path.join(dir, 'root'), stats };
}

/**
 * A synthetic tree for SCALE: `entries` entries below `root` (dirs, small files, and 8 big files under
 * srv/big that bring the content to 500 B per entry). Kept in a folder with the root and stats.json.
 */
export async function treeScale(entries) {
  const bytes = entries * BYTES_PER_ENTRY;
  const what = `a synthetic tree of ${entries} entries, ${size(bytes)} of content`;
  const tree = await synthTree(`synth-${count3(entries)}`, what, async (root) => {
    const small = await synth(['small', root, '--entries', entries, '--big-files', BIG_FILES]);
    const big = await synth([
      'big',
      path.join(root, 'srv', 'big'),
      '--files',
      BIG_FILES,
      '--bytes',
      Math.max(0, bytes - small.bytes),
    ]);
    return { entries: small.entries + big.entries, bytes: small.bytes + big.bytes };
  });
  return { ...tree, mount: null };
}

/**
 * P4's tree: `root` (1M entries of small files and directories) and two folders of 8 big files,
 * `big-high` (5 GB in all with root's files) and `big-low` (0.5 GB in all). A run renames one of them
 * to root/srv/big and back (see synthRun), so both variants have the same entries (and share 4 GB of
 * small files).
 */
export async function treeP4({ p4Entries, p4Bytes }) {
  const dir = await cached(path.join(WORK, 'trees', `p4-${count3(p4Entries)}`), async (tmp) => {
    const t0 = Date.now();
    log(
      `building P4's tree: ${p4Entries} entries, with ${size(p4Bytes.high)} and ${size(p4Bytes.low)} of content (a few minutes)…`,
    );
    const small = await synth([
      'small',
      path.join(tmp, 'root'),
      '--entries',
      p4Entries,
      '--big-files',
      BIG_FILES,
    ]);
    const smallSeconds = (Date.now() - t0) / 1000;
    log(
      `  ${small.files} small files (${size(small.bytes)}) in ${smallSeconds.toFixed(0)} s; writing the big files…`,
    );
    const stats = { smallSeconds };
    for (const v of ['high', 'low']) {
      const big = await synth([
        'big',
        path.join(tmp, `big-${v}`),
        '--files',
        BIG_FILES,
        '--bytes',
        p4Bytes[v] - small.bytes,
      ]);
      stats[v] = { entries: small.entries + big.entries, bytes: small.bytes + big.bytes };
    }
    stats.buildSeconds = (Date.now() - t0) / 1000;
    stats.disk = await diskUse(tmp);
    await writeFile(path.join(tmp, 'stats.json'), JSON.stringify(stats));
    log(`  built in ${stats.buildSeconds.toFixed(0)} s`);
    return JSON.stringify(stats);
  });
  await unmountP4(dir);
  const stats = JSON.parse(await readFile(path.join(dir, 'stats.json'), 'utf8'));
  const variant = (v) => ({ dir, root: path.join(dir, 'root'), stats: stats[v], mount: v });
  return {
    dir,
    high: variant('high'),
    low: variant('low'),
    buildSeconds: stats.buildSeconds,
    disk: stats.disk,
  };
}

/** Puts back in its folder whichever big-file set a run (perhaps interrupted) left in root/srv/big. */
async function unmountP4(dir) {
  const inRoot = path.join(dir, 'root', 'srv', 'big');
  if (!existsSync(inRoot)) return;
  const missing = ['high', 'low'].filter((v) => !existsSync(path.join(dir, `big-${v}`)));
  if (missing.length !== 1)
    throw new Error(`${dir}: cannot tell which big files are in root/srv/big; delete ${dir}.ok`);
  await rename(inRoot, path.join(dir, `big-${missing[0]}`));
}

/**
 * P7's tree: `node bench/synth-tree.mjs small ROOT --entries N` as issue 17 gives it, small files only
 * (268 B on average: 53 MB for 200k entries). Kept in a folder with the root and stats.json.
 */
export function treeSmallFiles(entries) {
  return synthTree(`p7-${count3(entries)}`, `P7's tree of ${entries} small files`, (root) =>
    synth(['small', root, '--entries', entries]),
  );
}
