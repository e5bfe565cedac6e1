// CHAIN: snapshots of snapshots under a small layer budget, so that compaction comes within a few
// generations: the time and upload of a compacting generation next to the normal ones. A first
// generation adds a large directory (a toolchain's worth); later ones a small change each. No peer:
// no other tool bounds a chain's layers.
import { mkdtemp, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { cleanEnv, exec, failureText, must, q, sh, timed } from '../shared/exec.mjs';
import { WORK, log } from '../shared/paths.mjs';
import { Registry } from '../shared/registry.mjs';
import { f2, median, size } from '../shared/table.mjs';
import { treeMinbase } from '../shared/trees.mjs';

const GENERATIONS = 14;
/** Room for this many layers above the base: small, so that compaction comes every few generations. */
const ROOM = 8;
/** The first generation's large change: a copy of this directory of the machine. */
const BIG = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib'];

/** The CHAIN section: one row per generation, and the compacting ones beside the median normal one. */
export async function chain({ node, cli, pre, quietWait }) {
  const result = { sections: [], details: [], problems: [] };
  const reg = new Registry(path.join(WORK, 'registry-chain'));
  const work = await mkdtemp(path.join(WORK, 'chain-'));
  const sandbox = path.join(work, 'rootfs');
  const rows = [];
  let baseLayers = 0;
  let maxLayers = 0;
  try {
    await reg.fresh();
    await must('cp', ['-a', await treeMinbase(), sandbox]);
    const ref = `${reg.host}/bench/chain:latest`;
    const env = cleanEnv({ HOME: path.join(work, 'home') });
    const base = await exec(node, [cli, '--root', sandbox, '--image', `${reg.host}/bench/base:latest`], {
      env,
    });
    if (base.code !== 0) throw new Error(`pushing the base failed: ${failureText(base)}`);
    baseLayers = (await applyMarker(reg, 'bench/base', sandbox)) - 1;
    maxLayers = Math.min(127, baseLayers + ROOM);
    const big = (
      await Promise.all(
        BIG.map((d) =>
          stat(d).then(
            () => d,
            () => null,
          ),
        ),
      )
    ).find(Boolean);
    log(
      `CHAIN: ${GENERATIONS} generations, a base of ${baseLayers} layers, max-layers ${maxLayers}, the first adds a copy of ${big}…`,
    );
    for (let g = 1; g <= GENERATIONS; g++) {
      const baseline = path.join(work, `baseline-${g}`);
      await must(node, [pre, '--root', sandbox, '--baseline', baseline], { env });
      if (g === 1) await must('cp', ['-a', big, path.join(sandbox, 'opt', 'big')]);
      await sh(
        `mkdir -p ${q(`${sandbox}/opt/gen${g}`)} && head -c 20000 /dev/urandom > ${q(`${sandbox}/opt/gen${g}/data`)} && echo GEN${g}=${g} >> ${q(`${sandbox}/etc/environment`)}`,
      );
      const args = [
        cli,
        '--root',
        sandbox,
        '--baseline',
        baseline,
        '--image',
        ref,
        '--max-layers',
        String(maxLayers),
      ];
      const r = await timed(node, args, { env, quietWait, servers: [reg] });
      if (r.code !== 0) throw new Error(`generation ${g} failed: ${failureText(r)}`);
      const compacted = /compacted: the top (\d+) layers/.exec(r.stdout);
      log(
        `  generation ${g}: ${r.wall.toFixed(2)} s, uploaded=${r.outputs.uploaded}, layers=${r.outputs.layers}${compacted ? `, merged ${compacted[1]}` : ''}`,
      );
      rows.push({
        g,
        wall: r.wall,
        uploaded: Number(r.outputs.uploaded),
        layers: Number(r.outputs.layers),
        merged: compacted ? Number(compacted[1]) : 0,
      });
      await applyMarker(reg, 'bench/chain', sandbox);
    }
  } finally {
    await reg.dispose();
    await rm(work, { recursive: true, force: true });
  }
  const compacting = rows.filter((r) => r.merged);
  const normal = rows.filter((r) => !r.merged && r.g > 1);
  if (!compacting.length) result.problems.push('CHAIN: no generation compacted');
  const typical = {
    wall: median(normal.map((r) => r.wall)),
    uploaded: median(normal.map((r) => r.uploaded)),
  };
  result.sections.push({
    title: '### CHAIN: compaction in a chain of snapshots',
    header: ['generation', 'wall (s)', 'uploaded', 'layers in the image', 'layers merged'],
    rows: rows.map((r) => [r.g, f2(r.wall), size(r.uploaded), r.layers, r.merged || '']),
    text:
      `a base of ${baseLayers} layers, max-layers ${maxLayers}; generation 1 adds a large directory, the others 20 KB and a line each. ` +
      `A normal generation (median of ${normal.length}): ${f2(typical.wall)} s, ${size(typical.uploaded)} uploaded; ` +
      compacting
        .map((r) => `compacting generation ${r.g}: ${f2(r.wall)} s, ${size(r.uploaded)} uploaded`)
        .join('; ') +
      '.',
  });
  return result;
}

/**
 * A sandbox started from the image has its marker layer unpacked: so does this one, keeping /etc's
 * time as unpackers do. Returns how many layers the image has.
 */
async function applyMarker(reg, repository, sandbox) {
  const res = await fetch(`http://${reg.host}/v2/${repository}/manifests/latest`, {
    headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
  });
  const { layers } = await res.json();
  const marker = layers.at(-1);
  const etc = path.join(sandbox, 'etc');
  await sh(
    `t=$(stat -c %y ${q(etc)}); curl -fsS ${q(`http://${reg.host}/v2/${repository}/blobs/${marker.digest}`)} | tar -xzf - --numeric-owner -p -C ${q(sandbox)}; touch -m -d "$t" ${q(etc)}`,
  );
  return layers.length;
}
