// SCALE: ours alone on 10k, 100k and 1M entries (500 B of content each): time per entry and RSS per
// entry as the tree grows.
import { log } from '../shared/paths.mjs';
import { summarize, synthDetail, synthRun } from '../shared/synth-run.mjs';
import { treeP4, treeScale } from '../shared/synth-trees.mjs';
import { count3, f1, f2, mb, size } from '../shared/table.mjs';
import { warmCache } from '../shared/trees.mjs';

const HEADER = [
  'entries',
  'content',
  'wall (s)',
  'µs/entry',
  'MB/s',
  'walk (s)',
  'walk µs/entry',
  'layers (s)',
  'layers µs/entry',
  'peak RSS (MB)',
  'RSS B/entry',
  'notes',
];

/**
 * SCALE on the entry counts of `plan` (synthPlan); its largest point is P4's 0.5 GB tree, whose runs
 * `p4Low` (P4's summary of them, when P4 ran) gives instead of running it again. Returns its section
 * (table and whether time per entry stays flat), the notes on the trees it built, details, problems.
 */
export async function scale({ plan, p4Low, node, cli, nodeArgs, runs, quietWait }) {
  const result = { sections: [], synthTrees: [], details: [], problems: [] };
  const ours = { node, cli, nodeArgs, quietWait };
  const points = [];
  for (const n of plan.scaleEntries) {
    if (n === plan.p4Entries && p4Low) {
      points.push({ ...p4Low, reused: true });
      continue;
    }
    let tree;
    if (n === plan.p4Entries) {
      const p4 = await treeP4(plan);
      tree = p4.low;
      await warmCache(p4.dir);
    } else {
      tree = await treeScale(n);
      await warmCache(tree.root);
    }
    tree.label = `SCALE ${count3(n)} entries + ${size(tree.stats.bytes)}`;
    if (!tree.mount)
      result.synthTrees.push(
        `synth-${count3(n)} (${size(tree.stats.bytes)} of content, ${size(tree.stats.disk)} on disk, built in ${f1(tree.stats.buildSeconds)} s)`,
      );
    const series = [];
    for (let i = 1; i <= runs; i++) {
      log(`${tree.label}: run ${i}/${runs}`);
      const r = await synthRun(tree, ours);
      result.problems.push(...r.problems);
      series.push(r);
    }
    const s = summarize(tree, series);
    result.details.push(synthDetail(s));
    points.push(s);
  }
  const rows = points.map((p) => [
    p.entries,
    size(p.bytes),
    f2(p.wall),
    f1((p.wall / p.entries) * 1e6),
    f1(mb(p.bytes) / p.wall),
    f1(p.walk),
    f1((p.walk / p.entries) * 1e6),
    f1(p.layers),
    f1((p.layers / p.entries) * 1e6),
    f1(mb(p.rssBytes)),
    (p.rssBytes / p.entries).toFixed(0),
    p.reused
      ? 'the P4 0.5 GB runs'
      : p.others > 0.5
        ? `other processes used ${f2(p.others)} cores (noisy)`
        : '',
  ]);
  // flat: the time per entry of the largest point against the one before it
  let text = null;
  const [a, b] = points.slice(-2);
  if (a && b && Number.isFinite(a.wall) && Number.isFinite(b.wall)) {
    const per = (p, t) => t / p.entries;
    const change = (f) => (per(b, f(b)) / per(a, f(a)) - 1) * 100;
    const word = (c) => (Math.abs(c) <= 15 ? 'flat' : c > 0 ? 'grows' : 'falls');
    const marginal = (b.rssBytes - a.rssBytes) / (b.entries - a.entries);
    text =
      `From ${a.entries} to ${b.entries} entries the time per entry ${word(change((p) => p.wall))} ` +
      `(${change((p) => p.wall) >= 0 ? '+' : ''}${f1(change((p) => p.wall))} % overall, walk ${f1(change((p) => p.walk))} %, ` +
      `layers ${f1(change((p) => p.layers))} %); peak RSS grows ${marginal.toFixed(0)} B per added entry.`;
  }
  result.sections.push({ title: '### Scale', header: HEADER, rows, text });
  return result;
}
