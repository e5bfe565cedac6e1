// P5: a push of a ready OCI layout (the gzip-1 dry run of the tree) to an empty registry, ours
// (`promote`) against `skopeo copy`: the same work on both sides.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { compareRow, sideBySide } from '../shared/compare.mjs';
import { cleanEnv, du, skopeoCopy, timed } from '../shared/exec.mjs';
import { ensureGzip1Layout, layoutTag } from '../shared/layout.mjs';
import { WORK } from '../shared/paths.mjs';
import { Registry } from '../shared/registry.mjs';
import { gb, mbps, median } from '../shared/table.mjs';

/**
 * P5 on `tree`'s gzip-1 layout: `gzip1Layout` (P1 gzip-1's) or one made here. Returns its row,
 * details and problems.
 */
export async function p5Push({ gzip1Layout, tree, node, cli, home, runs, quietWait }) {
  const result = { rows: [], details: [], problems: [] };
  const { layout, failure } = await ensureGzip1Layout({ made: gzip1Layout, node, cli, tree, home });
  if (!layout) {
    result.problems.push(`P5: the dry run for the layout failed: ${failure}`);
    return result;
  }
  const tag = await layoutTag(layout);
  const reg = new Registry(path.join(WORK, 'registry-p5'));
  const homes = path.join(WORK, 'homes');
  await rm(homes, { recursive: true, force: true });
  await mkdir(homes, { recursive: true });
  let res;
  try {
    res = await sideBySide('P5 push of an OCI layout', {
      runs,
      ours: async (i) => {
        const home = await mkdtemp(path.join(homes, `ours-${i}-`));
        return timed(
          node,
          [cli, 'promote', '--from', `oci:${layout}:${tag}`, '--to', `${reg.host}/bench/ours-${i}:latest`],
          { env: cleanEnv({ HOME: home }), quietWait, servers: [reg] },
        );
      },
      peer: async (i) => {
        const home = await mkdtemp(path.join(homes, `skopeo-${i}-`));
        const [cmd, args, opts] = skopeoCopy(
          `oci:${layout}:${tag}`,
          `docker://${reg.host}/bench/skopeo-${i}:latest`,
          home,
        );
        return timed(cmd, args, { ...opts, quietWait, servers: [reg] });
      },
      before: () => reg.fresh(),
    });
  } finally {
    await reg.dispose();
    await rm(homes, { recursive: true, force: true });
  }
  result.details.push(res.detail);
  result.problems.push(...res.problems);
  const layoutBytes = await du(path.join(layout, 'blobs'));
  const last = res.o.filter((r) => r.code === 0).at(-1);
  const notes = [
    `same layout (gzip-1 dry run of the tree, ${gb(layoutBytes)} of blobs) pushed to an empty registry, new repository each run`,
    'goal: ours ≥ 1.2× skopeo’s throughput',
  ];
  const speedO = median(res.o.map((r) => r.wall));
  const speedP = median(res.p.map((r) => r.wall));
  notes.push(`ours ${mbps(layoutBytes, speedO)}, skopeo ${mbps(layoutBytes, speedP)}`);
  if (last) {
    const up = last.outputs.uploaded;
    notes.push(`ours uploaded=${up === undefined ? '(not printed)' : gb(Number(up))}`);
    if (up !== undefined && Number(up) < layoutBytes * 0.99)
      result.problems.push(
        `P5: a push to an empty registry printed uploaded=${up} of ${layoutBytes} bytes of blobs`,
      );
  }
  result.rows.push(compareRow('P5 push of an OCI layout (promote vs skopeo copy)', res, 0.83, notes));
  return result;
}
