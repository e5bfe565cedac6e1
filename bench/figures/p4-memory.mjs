// P4: ours alone on 1M entries with 5 GB of content and with 0.5 GB (the same entries): peak RSS must
// stay under a bound and must not grow with the content (layer size).
import { log } from '../shared/paths.mjs';
import { summarize, synthDetail, synthRun } from '../shared/synth-run.mjs';
import { treeP4 } from '../shared/synth-trees.mjs';
import { count3, f1, f2, mb, size } from '../shared/table.mjs';
import { warmCache } from '../shared/trees.mjs';

const P4_GOAL_MB = 300;
/** "Memory must not grow with layer size": peak RSS with 10× the content at most this much higher. */
const P4_GROWTH_GOAL = 0.1;

const HEADER = [
  'tree',
  'entries (ours)',
  'content',
  'wall (s)',
  'peak RSS (MB)',
  'RSS B/entry',
  'goal (MB)',
  'pass/fail',
  'at the highest sampled RSS (MB)',
];

/** Heap and buffer figures (MB) of the memoryUsage() sample with the highest RSS. */
function memNote(mem) {
  if (!mem) return '—';
  return `heap ${mb(mem.heapUsed).toFixed(0)} used / ${mb(mem.heapTotal).toFixed(0)} total, external ${mb(mem.external).toFixed(0)} (array buffers ${mb(mem.arrayBuffers).toFixed(0)}), at ${mem.at.toFixed(0)} s`;
}

/**
 * P4 on the trees of `plan` (synthPlan). Returns its section (table and growth verdict), the note on
 * its tree, details and problems, and `low`: the summary of the 0.5 GB runs, which SCALE reuses.
 */
export async function p4Memory({ plan, node, cli, nodeArgs, runs, quietWait }) {
  const result = { sections: [], synthTrees: [], details: [], problems: [], low: null };
  const p4 = await treeP4(plan);
  p4.high.label = `P4 ${count3(plan.p4Entries)} entries + ${size(plan.p4Bytes.high)}`;
  p4.low.label = `P4 ${count3(plan.p4Entries)} entries + ${size(plan.p4Bytes.low)}`;
  result.synthTrees.push(
    `p4-${count3(plan.p4Entries)} (${size(p4.high.stats.bytes)} / ${size(p4.low.stats.bytes)} of content, ${size(p4.disk)} on disk, built in ${f1(p4.buildSeconds / 60)} min)`,
  );
  await warmCache(p4.dir);
  const high = [];
  const low = [];
  const ours = { node, cli, nodeArgs, quietWait };
  for (let i = 1; i <= runs; i++) {
    for (const [tree, series] of [
      [p4.high, high],
      [p4.low, low],
    ]) {
      log(`${tree.label}: run ${i}/${runs}`);
      const r = await synthRun(tree, ours);
      result.problems.push(...r.problems);
      series.push(r);
    }
  }
  const s = [summarize(p4.high, high), summarize(p4.low, low)];
  result.low = s[1];
  const rows = s.map((x) => {
    result.details.push(synthDetail(x));
    const rssMB = mb(x.rssBytes);
    return [
      x.tree.label,
      x.entries,
      size(x.bytes),
      f2(x.wall),
      f1(rssMB),
      Number.isFinite(x.rssBytes) ? (x.rssBytes / x.entries).toFixed(0) : '—',
      `≤ ${P4_GOAL_MB}`,
      Number.isFinite(rssMB) ? (rssMB <= P4_GOAL_MB ? 'pass' : 'fail') : 'error',
      memNote(x.mem) + (x.others > 0.5 ? `; other processes used ${f2(x.others)} cores (noisy)` : ''),
    ];
  });
  const growth = s[0].rssBytes / s[1].rssBytes - 1;
  const text = Number.isFinite(growth)
    ? `Peak RSS with ${f1(s[0].bytes / s[1].bytes)}× the content (same entries): ${f1(mb(s[0].rssBytes))} vs ${f1(mb(s[1].rssBytes))} MB, ` +
      `${growth >= 0 ? '+' : ''}${f1(growth * 100)} % (goal: no growth, ≤ +${P4_GROWTH_GOAL * 100} %: ${growth <= P4_GROWTH_GOAL ? 'pass' : 'fail'}).`
    : 'Peak RSS growth with the content: — (a run failed).';
  result.sections.push({ title: '### P4 memory', header: HEADER, rows, text });
  return result;
}
