// P3: a second push of the unchanged tree to the same tag (warm layer cache, should upload nothing),
// against a stat-only walk of the tree (find -printf).
import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { compareRow, sideBySide } from '../shared/compare.mjs';
import { cleanEnv, failureText, q, timed } from '../shared/exec.mjs';
import { WORK, log } from '../shared/paths.mjs';
import { Registry } from '../shared/registry.mjs';
import { gb } from '../shared/table.mjs';
import { MIXED_MIN_ENTRIES } from '../shared/trees.mjs';

/** P3 on `tree`. Returns its row, details and problems. */
export async function p3Resnapshot({ tree, node, cli, runs, quietWait }) {
  const result = { rows: [], details: [], problems: [] };
  const reg = new Registry(path.join(WORK, 'registry-p3'));
  const home = await mkdtemp(path.join(WORK, 'home-p3-'));
  let first;
  let res;
  try {
    await reg.fresh();
    const args = [cli, '--root', tree, '--image', `${reg.host}/bench/p3:latest`];
    const ours = { env: cleanEnv({ HOME: home }), quietWait, servers: [reg] };
    log('P3: first push (untimed)…');
    first = await timed(node, args, ours);
    if (first.code !== 0) {
      result.problems.push(`P3: the first push failed: ${failureText(first)}`);
      return result;
    }
    log(`  first push ${first.wall.toFixed(2)} s, uploaded=${first.outputs.uploaded}`);
    res = await sideBySide('P3 no-change re-snapshot', {
      runs,
      ours: () => timed(node, args, ours),
      // Numeric owners (%U %G): with names (%u %g) find looks each one up in passwd and group files,
      // which took it from 0.45 s to 1.3 s and flattered our ratio.
      peer: () =>
        timed('bash', ['-c', `set -o pipefail; find ${q(tree)} -printf '%s %T@ %m %U %G\\n' > /dev/null`], {
          quietWait,
          servers: [reg],
        }),
    });
  } finally {
    await reg.dispose();
    await rm(home, { recursive: true, force: true });
  }
  result.details.push(res.detail);
  result.problems.push(...res.problems);
  const ok = res.o.filter((r) => r.code === 0);
  const uploaded = ok.map((r) => r.outputs.uploaded);
  const reused = ok.map(
    (r) => (r.stdout.match(/: unchanged, (already there|mounted) in the registry/g) ?? []).length,
  );
  const entries = Number(/(\d+) entries, [\d.]+ \w+ in /.exec(ok[0]?.stdout ?? '')?.[1] ?? NaN);
  const notes = [
    Number.isFinite(entries)
      ? `${entries} entries${entries < MIXED_MIN_ENTRIES ? ` (fewer than the ${MIXED_MIN_ENTRIES} the goal is set for)` : ''}`
      : 'entries: ?',
    `uploaded= ${uploaded.join(' / ')} (first push ${gb(Number(first.outputs.uploaded))} in ${first.wall.toFixed(1)} s)`,
    `layers reused ${reused.join(' / ')} of ${ok[0]?.outputs.layers ?? '?'}`,
  ];
  if (ok.length && ok.some((r) => r.outputs.digest !== first.outputs.digest)) {
    notes.push('digest differs from the first push');
    result.problems.push(
      `P3: the re-snapshot gave digest ${ok.map((r) => r.outputs.digest).join(', ')} vs first ${first.outputs.digest}`,
    );
  }
  if (uploaded.some((u) => u !== '0'))
    result.problems.push(`P3: re-snapshot uploaded ${uploaded.join(', ')} bytes (expected 0)`);
  result.rows.push(compareRow('P3 no-change re-snapshot (vs find -printf)', res, 1.5, notes));
  return result;
}
