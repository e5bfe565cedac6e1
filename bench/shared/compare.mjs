// Ours against a peer: alternating runs, and the row of the main results table they give.
import { failureText } from './exec.mjs';
import { log } from './paths.mjs';
import { f1, f2, max, median } from './table.mjs';

/** Columns of the main table, one row per side-by-side figure. */
export const MAIN_HEADER = [
  'figure',
  'ours (s)',
  'peer (s)',
  'ratio ours/peer',
  'goal',
  'pass/fail',
  'ours peak RSS (MiB)',
  'notes',
];

/**
 * Runs ours and the peer alternately `runs` times (`before(i, side)` untimed before each); returns
 * both series, the per-run detail line and a problem for every failed run.
 */
export async function sideBySide(name, { runs, ours, peer, before }) {
  const o = [];
  const p = [];
  const problems = [];
  for (let i = 1; i <= runs; i++) {
    if (before) await before(i, 'ours');
    log(`${name}: run ${i}/${runs} ours`);
    const a = await ours(i);
    o.push(a);
    if (a.code !== 0) {
      problems.push(`${name} run ${i}: ours ${failureText(a)}`);
      log(`  ours FAILED: ${failureText(a)}`);
    } else
      log(`  ours ${a.wall.toFixed(2)} s, ${a.rssMiB.toFixed(0)} MiB, others used ${f2(a.others)} cores`);
    if (before) await before(i, 'peer');
    log(`${name}: run ${i}/${runs} peer`);
    const b = await peer(i);
    p.push(b);
    if (b.code !== 0) {
      problems.push(`${name} run ${i}: peer ${failureText(b)}`);
      log(`  peer FAILED: ${failureText(b)}`);
    } else log(`  peer ${b.wall.toFixed(2)} s, others used ${f2(b.others)} cores`);
  }
  const walls = (rs) => rs.map((r) => (r.code === 0 ? r.wall.toFixed(2) : `fail(${r.code})`)).join(' / ');
  const detail =
    `- ${name}: ours ${walls(o)} s; peer ${walls(p)} s; ` +
    `ours user+sys ${o.map((r) => f1(r.cpu)).join(' / ')} s; peer user+sys ${p.map((r) => f1(r.cpu)).join(' / ')} s; ` +
    (o.some((r) => r.serverCpu > 0)
      ? `registry user+sys with ours ${o.map((r) => f1(r.serverCpu)).join(' / ')} s, with the peer ${p.map((r) => f1(r.serverCpu)).join(' / ')} s; `
      : '') +
    `other processes' CPU during the runs (not ours, not the peer, not our registry): ${f2(median([...o, ...p].map((r) => r.others)))} cores (median)`;
  return { o, p, detail, problems };
}

/**
 * The main-table row of a side-by-side series: median walls (— if any run failed), ratio, verdict
 * against `goal` (null: report only), our peak RSS, and `notes` plus a warning when others were busy.
 */
export function compareRow(figure, { o, p }, goal, notes) {
  const okO = o.filter((r) => r.code === 0);
  const okP = p.filter((r) => r.code === 0);
  const ours = okO.length === o.length ? median(okO.map((r) => r.wall)) : NaN;
  const peer = okP.length === p.length ? median(okP.map((r) => r.wall)) : NaN;
  const ratio = ours / peer;
  let verdict = 'report only';
  if (goal !== null) verdict = Number.isFinite(ratio) ? (ratio <= goal ? 'pass' : 'fail') : 'error';
  else if (!Number.isFinite(ratio)) verdict = 'error';
  const rss = okO.length ? max(okO.map((r) => r.rssMiB)) : NaN;
  const others = median([...o, ...p].map((r) => r.others));
  const allNotes =
    others > 0.5 ? [...notes, `other processes used ${f2(others)} cores during runs (noisy)`] : notes;
  return [
    figure,
    f2(ours),
    f2(peer),
    f2(ratio),
    goal === null ? 'report only' : `≤ ${goal.toFixed(Number.isInteger(goal * 10) ? 1 : 2)}`,
    verdict,
    f1(rss),
    allNotes.join('; '),
  ];
}
