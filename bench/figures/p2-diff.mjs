// P2: diff capture of a ~700 MB change over a base image. umoci: repack of an unpacked bundle (new
// layer) + skopeo copy; ours: capture against the baseline recorded by the pre step + push.
import { existsSync } from 'node:fs';
import { appendFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { compareRow, sideBySide } from '../shared/compare.mjs';
import { cleanEnv, du, exec, failureText, must, q, skopeoCopy, timed } from '../shared/exec.mjs';
import { layoutLayers, layoutTag } from '../shared/layout.mjs';
import { WORK, log } from '../shared/paths.mjs';
import { Registry } from '../shared/registry.mjs';
import { f2, gb, median, sum } from '../shared/table.mjs';
import { treeMinbase } from '../shared/trees.mjs';

/** Layer descriptors of an image in a registry (skopeo inspect --raw). */
async function registryLayers(ref) {
  const r = await must('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`], {
    env: cleanEnv({ HOME: path.join(WORK, 'home-skopeo') }),
  });
  return JSON.parse(r.stdout).layers ?? [];
}

/**
 * P2 over the minbase rootfs, the change cut from `tree`'s srv/usrlib (or /usr/lib). `cli`/`pre`: our
 * main and pre steps. Returns its row, details and problems.
 */
export async function p2Diff(inputs) {
  // its copies of the rootfs and bundles take a few GB: removed whether it succeeds or not
  const dir = path.join(WORK, 'p2');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  try {
    return await diffCapture(dir, inputs);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function diffCapture(dir, { tree, node, cli, pre, home: dryRunHome, runs, quietWait }) {
  const result = { rows: [], details: [], problems: [] };
  const base = path.join(dir, 'base');
  const l0Pristine = path.join(dir, 'L0.pristine');
  const bundlePristine = path.join(dir, 'bundle.pristine');
  const env = (home) => cleanEnv({ HOME: home });
  const homes = path.join(dir, 'homes');
  await mkdir(homes, { recursive: true });

  log('P2: base tree (copy of the minbase rootfs), its layout (our dry run) and umoci unpack (untimed)…');
  await must('cp', ['-a', await treeMinbase(), base]);
  const baseBytes = await du(base);
  const dry = await exec(node, [cli, '--root', base, '--dry-run', '--output', l0Pristine], {
    env: env(dryRunHome),
  });
  if (dry.code !== 0) {
    result.problems.push(`P2: the dry run of the base failed: ${failureText(dry)}`);
    return result;
  }
  const tag = await layoutTag(l0Pristine);
  await must('umoci', ['unpack', '--image', `${l0Pristine}:${tag}`, bundlePristine]);

  // the change: ~700 MB of new files (from the bench tree, already in the page cache), a modified file
  // and a few deletions; identical every run
  const libSrc = [path.join(tree, 'srv', 'usrlib'), '/usr/lib'].find((d) =>
    existsSync(path.join(d, 'x86_64-linux-gnu')),
  );
  const changeParts = ['x86_64-linux-gnu'].filter((d) => existsSync(path.join(libSrc, d)));
  const applyChange = async (rootfs) => {
    await mkdir(path.join(rootfs, 'srv', 'p2'), { recursive: true });
    for (const d of changeParts)
      await must('cp', ['-a', path.join(libSrc, d), path.join(rootfs, 'srv', 'p2', d)]);
    for (const d of ['usr/share/doc', 'usr/share/man', 'usr/share/info', 'etc/motd', 'etc/issue.net'])
      await rm(path.join(rootfs, d), { recursive: true, force: true });
    await appendFile(path.join(rootfs, 'etc', 'debian_version'), 'bench-p2\n');
  };
  const changeBytes = sum(await Promise.all(changeParts.map((d) => du(path.join(libSrc, d)))));
  log(`P2: change = ${gb(changeBytes)} added (${changeParts.join(', ')} from ${libSrc}) + deletions`);

  const reg = new Registry(path.join(WORK, 'registry-p2'));
  const bundleOurs = path.join(dir, 'bundle-ours');
  const bundleUmoci = path.join(dir, 'bundle-umoci');
  const l0 = path.join(dir, 'L0');
  const oursLayers = [];
  const umociLayers = [];
  let res;
  try {
    await reg.fresh();
    const baseRef = `${reg.host}/bench/base:latest`;
    log('P2: pushing the base image once (untimed)…');
    const basePush = await exec(node, [cli, '--root', base, '--image', baseRef], {
      env: env(await mkdtemp(path.join(homes, 'base-'))),
    });
    if (basePush.code !== 0) {
      result.problems.push(`P2: the base push failed: ${failureText(basePush)}`);
      return result;
    }
    const baseLayers = await registryLayers(baseRef);
    await reg.stop();
    const storageBase = path.join(dir, 'registry-storage.base');
    await must('cp', ['-a', reg.storage, storageBase]);

    const homeOf = {};
    res = await sideBySide('P2 diff capture', {
      runs,
      ours: async (i) => {
        const home = homeOf[`ours-${i}`];
        const r = await timed(
          node,
          [
            cli,
            '--root',
            path.join(bundleOurs, 'rootfs'),
            '--baseline',
            path.join(home, 'baseline'),
            '--base-image',
            baseRef,
            '--image',
            `${reg.host}/bench/ours-${i}:latest`,
            '--changes',
            'baseline',
            '--metadata-file',
            path.join(home, 'metadata.json'),
          ],
          { env: env(home), quietWait, servers: [reg] },
        );
        if (r.code === 0) {
          const layers = await registryLayers(`${reg.host}/bench/ours-${i}:latest`);
          // the base's last layer is its marker (/etc/depot-snapshot.json), replaced by every snapshot:
          // ours must keep the others, and everything after the common prefix is new
          let shared = 0;
          while (shared < baseLayers.length && layers[shared]?.digest === baseLayers[shared].digest) shared++;
          if (shared < baseLayers.length - 1)
            result.problems.push(
              `P2 run ${i}: ours kept ${shared} of the base image's ${baseLayers.length} layers (all but its marker expected)`,
            );
          oursLayers.push(layers.slice(shared));
        }
        return r;
      },
      peer: async (i) => {
        const home = homeOf[`umoci-${i}`];
        const r = await timed(
          'bash',
          [
            '-c',
            `set -euo pipefail; umoci repack --image ${q(`${l0}:${tag}`)} ${q(bundleUmoci)}; ` +
              `skopeo copy -q --dest-tls-verify=false ${q(`oci:${l0}:${tag}`)} ${q(`docker://${reg.host}/bench/umoci-${i}:latest`)}`,
          ],
          { env: env(home), quietWait, servers: [reg] },
        );
        if (r.code === 0) umociLayers.push((await layoutLayers(l0)).slice(-1));
        return r;
      },
      // untimed: same registry state (the base only) on the same port, pristine bundle, then the change
      before: async (i, side) => {
        await reg.restore(storageBase);
        const home = await mkdtemp(path.join(homes, `${side === 'ours' ? 'ours' : 'umoci'}-${i}-`));
        homeOf[`${side === 'ours' ? 'ours' : 'umoci'}-${i}`] = home;
        if (side === 'ours') {
          await rm(bundleOurs, { recursive: true, force: true });
          await must('cp', ['-a', bundlePristine, bundleOurs]);
          const preRun = await exec(
            node,
            [
              pre,
              '--root',
              path.join(bundleOurs, 'rootfs'),
              '--baseline',
              path.join(home, 'baseline'),
              '--base-image',
              baseRef,
            ],
            { env: env(home) },
          );
          if (preRun.code !== 0)
            result.problems.push(`P2 run ${i}: our pre step failed: ${failureText(preRun)}`);
          await applyChange(path.join(bundleOurs, 'rootfs'));
        } else {
          await rm(bundleUmoci, { recursive: true, force: true });
          await rm(l0, { recursive: true, force: true });
          await must('cp', ['-a', bundlePristine, bundleUmoci]);
          await must('cp', ['-a', l0Pristine, l0]);
          // the base's blobs into the target repository first, as ours has them through --base-image
          await must(
            ...skopeoCopy(`oci:${l0Pristine}:${tag}`, `docker://${reg.host}/bench/umoci-${i}:base`, home),
          );
          await applyChange(path.join(bundleUmoci, 'rootfs'));
        }
      },
    });
  } finally {
    await reg.dispose();
  }
  result.details.push(res.detail);
  result.problems.push(...res.problems);
  const notes = [
    `change: ${gb(changeBytes)} of new files + 5 deletions + 1 modified file over a ${gb(baseBytes)} minbase; base layers already in the registry for both`,
    'peer = umoci repack + skopeo copy; ours = capture against the pre step’s baseline + push; goal: ours ≥ 1.5× faster',
  ];
  const oursBytes = oursLayers.map((ls) => sum(ls.map((l) => l.size)));
  const umociBytes = umociLayers.map((ls) => sum(ls.map((l) => l.size)));
  if (oursBytes.length && umociBytes.length) {
    const o = median(oursBytes);
    const p = median(umociBytes);
    const ratio = o / p;
    notes.push(
      `new layers: ours ${oursLayers.at(-1).length} = ${gb(o)} vs umoci 1 = ${gb(p)}, ×${f2(ratio)} (goal ≤ 1.1: ${ratio <= 1.1 ? 'pass' : 'fail'})`,
    );
  }
  const last = res.o.filter((r) => r.code === 0).at(-1);
  if (last) notes.push(`ours uploaded=${gb(Number(last.outputs.uploaded))}`);
  result.rows.push(
    compareRow('P2 diff capture of a ~700 MB change (vs umoci repack + skopeo copy)', res, 0.67, notes),
  );
  return result;
}
