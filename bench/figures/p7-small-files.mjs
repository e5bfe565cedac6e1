// P7: small files. A gzip-1 dry run of 200k entries of small files (bench/synth-tree.mjs small, 53 MB)
// against a tar that writes what ours writes (pax headers without atime and ctime, xattrs, numeric
// owners) piped to pigz: the cost per entry, where P1's trees measure mostly the cost per byte.
import { q, sh } from '../shared/exec.mjs';
import { treeSmallFiles } from '../shared/synth-trees.mjs';
import { count3, size } from '../shared/table.mjs';
import { warmCache } from '../shared/trees.mjs';
import { compressFigure } from './p1-compress.mjs';

const TAR_FLAGS = '--format=pax --pax-option=delete=atime,delete=ctime --xattrs --numeric-owner';

/**
 * P7 on a tree of `plan.p7Entries` entries (synthPlan: 200k ÷ BENCH_SYNTH_DIV). Returns its row,
 * details, problems and the note on its tree (`inputNotes`).
 */
export async function p7SmallFiles({ plan, node, cli, home, runs, quietWait }) {
  const t = await treeSmallFiles(plan.p7Entries);
  await warmCache(t.root);
  const tarBytes = Number((await sh(`tar ${TAR_FLAGS} -cf - -C ${q(t.root)} . | wc -c`)).stdout.trim());
  const result = await compressFigure(
    {
      key: 'P7',
      figure: `P7 ${count3(plan.p7Entries)} small files, gzip-1 (vs tar --format=pax … | pigz -p2 -1)`,
      compression: 'gzip',
      level: 1,
      tarFlags: TAR_FLAGS,
      peerScript: 'pigz -p2 -1',
      peerName: 'tar | pigz -p2 -1',
      goal: 1.2,
      notes: [`${t.stats.entries} entries, ${size(t.stats.bytes)} of content`],
    },
    { tree: t.root, tarBytes, node, nodeVersion: '', cli, home, runs, quietWait },
  );
  const walked = Number(result.entries);
  if (result.entries !== null && walked !== t.stats.entries)
    result.problems.push(`P7: ours walked ${walked} entries, the tree has ${t.stats.entries}`);
  result.inputNotes = [
    `P7 tree p7-${count3(plan.p7Entries)} (${t.stats.entries} entries, ${size(t.stats.bytes)} of content, ${size(t.stats.disk)} on disk, built in ${t.stats.buildSeconds.toFixed(0)} s; peer tar flags \`${TAR_FLAGS}\`)`,
  ];
  // the main tree's entries are reported from P1; P7's are in its own note
  result.entries = null;
  return result;
}
