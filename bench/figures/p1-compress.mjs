// P1: a dry run of the tree to an OCI layout at one compression, against tar | pigz or tar | zstd.
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { compareRow, sideBySide } from '../shared/compare.mjs';
import { cleanEnv, exec, q, sh, timed } from '../shared/exec.mjs';
import { GZIP1_LAYOUT } from '../shared/layout.mjs';
import { WORK, log } from '../shared/paths.mjs';
import { node24 } from '../shared/runtime.mjs';
import { f1, f2, gb, mbps, median, size } from '../shared/table.mjs';

const pigzNote = 'tar | pigz -p2';
/** Output sizes: GB to the MB for the large trees, MB for P7's. */
const bytes = (n) => (n >= 1e9 ? gb(n) : size(n));

/** The three P1 figures by BENCH_ONLY key. */
export const P1_VARIANTS = {
  'P1-gzip': {
    figure: 'P1 gzip-1 (vs pigz -p2 -1)',
    compression: 'gzip',
    level: 1,
    peerScript: 'pigz -p2 -1',
    peerName: `${pigzNote} -1`,
    goal: 0.8,
    sizeGoal: 0.01, // and layers at most 1 % larger than pigz's output
    out: GZIP1_LAYOUT, // kept: P5 pushes it
  },
  'P1-gzip6': {
    figure: 'P1 gzip-6 (vs pigz -p2 -6)',
    compression: 'gzip',
    level: 6,
    peerScript: 'pigz -p2 -6',
    peerName: `${pigzNote} -6`,
    goal: null,
  },
  'P1-zstd': {
    // the figure name gets the Node version
    compression: 'zstd',
    level: 3,
    peerScript: 'zstd -q -T2 -3',
    peerName: 'tar | zstd -T2 -3',
    goal: 1.0,
    node24: true,
  },
};

/**
 * One P1 figure (`key` of P1_VARIANTS) on `tree` (`tarBytes` of tar stream). `gzip1Size`: the size
 * of P1 gzip-1's layers, which gzip-6's notes compare with. Returns its row, details and problems,
 * plus `size` (bytes of layers), `entries` (as ours counted them), `layout` (gzip-1: the layout of its
 * last run, if that succeeded) and `node24` (zstd: the version of Node 24 it ran on).
 */
export function p1Compress(key, inputs) {
  return compressFigure({ key, ...P1_VARIANTS[key] }, inputs);
}

/**
 * A dry run of `tree` against `tar TARFLAGS -cf - -C TREE . | PEER > /dev/null`, as the variant `v`
 * says (see P1_VARIANTS, plus `key`, its BENCH_ONLY key; `tarFlags`, `notes` and `sizeGoal` are
 * optional): P1's figures, and others of the same shape on other trees.
 */
export async function compressFigure(
  v,
  { tree, tarBytes, node, nodeVersion, cli, home, runs, quietWait, gzip1Size },
) {
  const result = {
    rows: [],
    details: [],
    problems: [],
    size: NaN,
    entries: null,
    layout: null,
    node24: null,
  };
  if (v.node24) {
    // zstd needs Node 22.15+: ours runs on Node 24 whatever BENCH_NODE says
    try {
      if (!nodeVersion.startsWith('v24')) node = await node24();
      result.node24 = (await exec(node, ['--version'])).stdout.trim();
    } catch (err) {
      result.problems.push(`P1 zstd: no Node 24: ${err.message}`);
      return result;
    }
  }
  const figure = v.figure ?? `P1 zstd-3 (vs zstd -T2 -3; ours on Node ${result.node24})`;
  const out = v.out ?? path.join(WORK, 'out', v.key);
  const tar = `tar ${v.tarFlags ? v.tarFlags + ' ' : ''}-cf - -C ${q(tree)} .`;
  log(`${figure}: measuring the peer's output size (untimed)…`);
  const peerSize = Number((await sh(`${tar} | ${v.peerScript} | wc -c`)).stdout.trim());
  const res = await sideBySide(figure, {
    runs,
    ours: () =>
      timed(
        node,
        [
          cli,
          '--root',
          tree,
          '--dry-run',
          '--output',
          out,
          '--compression',
          v.compression,
          '--compression-level',
          String(v.level),
        ],
        { env: cleanEnv({ HOME: home }), quietWait },
      ),
    peer: () =>
      timed('bash', ['-c', `set -o pipefail; ${tar} | ${v.peerScript} > /dev/null`], {
        quietWait,
      }),
    before: async (_i, side) => side === 'ours' && (await rm(out, { recursive: true, force: true })),
  });
  result.details.push(res.detail);
  result.problems.push(...res.problems);
  const last = res.o.filter((r) => r.code === 0).at(-1);
  result.size = last ? Number(last.outputs.size) : NaN;
  const notes = [...(v.notes ?? [])];
  if (last) {
    const larger = result.size / peerSize - 1;
    notes.push(
      `${last.outputs.layers} layers, ${bytes(result.size)} vs ${v.peerName} ${bytes(peerSize)} (${f1(larger * 100)}%)`,
    );
    if (v.sizeGoal !== undefined)
      notes.push(
        `size check, layers ${larger >= 0 ? '+' : ''}${f2(larger * 100)} % vs ${v.peerName} (goal ≤ +${f1(v.sizeGoal * 100)} %): ${larger <= v.sizeGoal ? 'pass' : 'fail'}`,
      );
    notes.push(`${mbps(tarBytes, median(res.o.map((r) => r.wall)))} of tar stream`);
    result.entries = /(\d+) entries, ([\d.]+ \w+) in /.exec(last.stdout)?.[1] ?? null;
    if (last.outputs.uploaded !== '0')
      result.problems.push(`${figure}: dry run printed uploaded=${last.outputs.uploaded}`);
  }
  const row = compareRow(figure, res, v.goal, notes);
  if (Number.isFinite(gzip1Size) && Number.isFinite(result.size))
    row[7] += `; ours ${v.compression}-${v.level} is ${f1((result.size / gzip1Size - 1) * 100)}% vs ours gzip-1`;
  result.rows.push(row);
  // the layout left by the runs: only gzip-1's is used again, and only if its last run wrote it whole
  if (v.out && res.o.at(-1)?.code === 0) result.layout = out;
  else await rm(out, { recursive: true, force: true });
  return result;
}
