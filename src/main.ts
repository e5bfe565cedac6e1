import * as core from '@actions/core';
import os from 'node:os';
import { stat } from 'node:fs/promises';
import { getInputs, helpText, InputError, wantsHelp, type Inputs } from './inputs.js';
import { coreLogger, describeExclusions, formatBytes, setOutputs } from './report.js';
import { readMounts, readSwapFiles } from './walk/mountinfo.js';
import { Filter } from './walk/filter.js';
import { walk, WhiteoutNameError, type Entry } from './walk/walk.js';
import { partition } from './layer/partition.js';
import { writeLayer, type BlobSink, type LayerResult } from './layer/write.js';
import { buildImage, rfc3339, type NewLayer } from './image/build.js';
import { LayoutError, LayoutWriter } from './layout/layout.js';
import { limiter } from './util/limit.js';
import { ReferenceError } from './registry/reference.js';

/** Errors whose message is the whole story: shown as one line, without a stack. */
const USER_ERRORS = [InputError, LayoutError, ReferenceError, WhiteoutNameError];

export async function run(argv: string[]): Promise<void> {
  if (wantsHelp(argv)) {
    process.stdout.write(helpText() + '\n');
    return;
  }
  let layout: LayoutWriter | undefined;
  try {
    const inputs = getInputs(argv);
    await checkRoot(inputs.root);
    if (!inputs.dryRun) throw new InputError('pushing to a registry is not available yet; set dry-run to write a layout');
    layout = await LayoutWriter.create(inputs.output);
    await snapshot(inputs, layout);
  } catch (err) {
    await layout?.abort();
    const known = USER_ERRORS.some((E) => err instanceof E);
    if (!known) core.debug((err as Error)?.stack ?? String(err));
    core.setFailed(known ? (err as Error).message : `snapshot failed: ${(err as Error)?.message ?? err}`);
  }
}

async function snapshot(inputs: Inputs, layout: LayoutWriter): Promise<void> {
  const log = coreLogger;
  const started = Date.now();

  const scan = await core.group('Walk', async () => {
    const filter = new Filter({
      root: inputs.root,
      mounts: await readMounts(),
      swapFiles: await readSwapFiles(),
      hostPathsToDrop: [
        { path: inputs.output, reason: 'output directory' },
        { path: layout.staging, reason: 'output directory' },
        { path: `${layout.staging}.old`, reason: 'output directory' },
        ...(process.env.RUNNER_TEMP ? [{ path: process.env.RUNNER_TEMP, reason: "runner's temp directory" }] : []),
      ],
      exclude: inputs.exclude,
      include: inputs.include,
    });
    const result = await walk({ root: inputs.root, filter, log });
    const bytes = result.entries.reduce((n, e) => n + e.size, 0);
    log.info(`${result.entries.length} entries, ${formatBytes(bytes)} in ${inputs.root}`);
    for (const line of describeExclusions(result.excluded, result.sockets)) log.info(`left out: ${line}`);
    if (result.sockets.length) log.warn(`${result.sockets.length} socket(s) skipped: sockets cannot be stored in an image`);
    return result;
  });

  const layers = await core.group('Layers', async () => {
    const plans = partition(scan.entries, inputs.layerSize);
    const parallel = limiter(Math.max(2, os.availableParallelism()));
    const results = await Promise.all(
      plans.map((plan) =>
        parallel(() =>
          writeLayer(
            { root: inputs.root, entries: scan.entries, indices: plan.indices, compression: inputs.compression, level: inputs.compressionLevel, log },
            layout as BlobSink,
          ),
        ),
      ),
    );
    results.forEach((r: LayerResult, i) =>
      log.info(`layer ${i + 1}/${results.length} ${plans[i].label}: ${r.entries} entries, ${formatBytes(r.uncompressedSize)} → ${formatBytes(r.descriptor.size)} ${r.descriptor.digest}`),
    );
    return results.map((r, i): NewLayer => ({ descriptor: r.descriptor, diffId: r.diffId, comment: plans[i].label }));
  });

  const image = buildImage({
    layers,
    created: createdTime(scan.entries),
    ...sourceAnnotations(),
  });
  await layout.putJson(image.config);
  await layout.putJson(image.manifest);
  const tags = inputs.targets.length ? inputs.targets.map((t) => t.tag!) : ['latest'];
  await layout.finish(image.manifest.descriptor, tags);

  const size = layers.reduce((n, l) => n + l.descriptor.size, 0) + image.config.descriptor.size;
  log.info(`wrote ${inputs.output} (${tags.join(', ')}) ${image.manifest.descriptor.digest} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  setOutputs({
    digest: image.manifest.descriptor.digest,
    tags: tags.join(','),
    size,
    layers: layers.length,
    output: inputs.output,
  });
}

async function checkRoot(root: string): Promise<void> {
  const st = await stat(root).catch((err: NodeJS.ErrnoException) => {
    throw new InputError(`root ${root} cannot be read: ${err.code ?? err.message}`);
  });
  if (!st.isDirectory()) throw new InputError(`root ${root} is not a directory`);
}

/** SOURCE_DATE_EPOCH when set, else the newest mtime captured: never the clock, so captures repeat. */
function createdTime(entries: Entry[]): string {
  const epoch = process.env.SOURCE_DATE_EPOCH;
  if (epoch && /^\d+$/.test(epoch)) return rfc3339(Number(epoch));
  let sec = 0;
  let nsec = 0;
  for (const e of entries) {
    if (e.mtimeSec > sec || (e.mtimeSec === sec && e.mtimeNsec > nsec)) {
      sec = e.mtimeSec;
      nsec = e.mtimeNsec;
    }
  }
  return rfc3339(sec, nsec);
}

function sourceAnnotations(): { source?: string; revision?: string } {
  const { GITHUB_SERVER_URL: server, GITHUB_REPOSITORY: repo, GITHUB_SHA: sha } = process.env;
  return {
    ...(server && repo ? { source: `${server}/${repo}` } : {}),
    ...(sha ? { revision: sha } : {}),
  };
}
