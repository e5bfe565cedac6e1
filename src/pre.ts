import './heap.js';
import * as core from '@actions/core';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { MARKER_PATH, MARKER_REWRITTEN } from './image/marker.js';
import { checkUpper, findOverlay, overlayStorage } from './diff/overlay.js';
import { readMounts } from './walk/mountinfo.js';
import { getPreInputs, InputError } from './inputs/index.js';
import { coreLogger, inActions } from './runner.js';
import { scanRoot } from './walk/scan.js';
import { writeBaseline } from './diff/baseline.js';
import { layerCacheDirs } from './registry/layer-cache.js';
import { stopCleanlyOnSignals } from './interrupt.js';
import { failOrRerunAsRoot, isRoot, NeedsRootError, returnToCaller } from './privileges.js';
import { readInventory, splitPath } from './inventory/read.js';
import { inventoryFileFor, writeInventoryFile } from './inventory/record.js';

/**
 * The pre step, run by the runner before the job's steps: fails early on bad inputs, and records the
 * baseline (the tree as the base image left it) that the main step compares against. From the command
 * line: `node dist/pre/index.js --root R --baseline FILE`.
 */
async function pre(): Promise<void> {
  // A job cancelled while the baseline is written ends with one line, and no partial file is left.
  stopCleanlyOnSignals();
  const argv = inActions() ? [] : process.argv.slice(2);
  try {
    const inputs = getPreInputs(argv, process.env);
    if (!inputs) {
      core.info('promote, pull and lookup capture nothing: no baseline recorded');
      return;
    }
    if (inputs.upper) await checkUpper(inputs.upper, inputs.root);
    await recordInventory(inputs.root, inputs.baseline);
    if (inputs.changes === 'full') return;
    const overlay = await findOverlay(inputs.root, await readMounts(), inputs.upper);
    if (inputs.changes === 'overlay' || (inputs.changes === 'auto' && overlay)) {
      core.info(
        !overlay
          ? 'changes: overlay: no baseline recorded'
          : overlay.given
            ? `upper ${overlay.upper} is the overlay upper dir of ${inputs.root}: it will give the changes, no baseline needed`
            : `${inputs.root} is an overlay mount: its upper dir will give the changes, no baseline needed`,
      );
      return;
    }
    const hasMarker = existsSync(path.join(inputs.root, MARKER_PATH));
    if (!inputs.baseImage && !hasMarker && inputs.changes === 'auto') {
      const unknown = `no base image known yet (base-image, SNAPSHOT_BASE_IMAGE, /${MARKER_PATH})`;
      // Only the default path may be skipped: a path the user gave is one they mean to pass to main,
      // with the base image named there.
      if (!inputs.baselineGiven) {
        core.info(
          `${unknown} and no baseline path given: no baseline recorded, the snapshot will capture the whole tree`,
        );
        return;
      }
      core.info(
        `${unknown}: recording the baseline anyway, because its path was given (baseline: ${inputs.baseline}); the main step uses it when it is given a base image`,
      );
    }
    if (!inputs.baseline) throw new InputError('baseline: no path given and no RUNNER_TEMP to put it in');
    const started = Date.now();
    const scan = await scanRoot({
      root: inputs.root,
      exclude: inputs.exclude,
      include: inputs.include,
      ownPaths: [
        inputs.baseline,
        inventoryFileFor(inputs.baseline),
        ...layerCacheDirs(),
        ...overlayStorage(overlay),
      ],
      rewritten: [MARKER_REWRITTEN],
      log: coreLogger,
    });
    if (scan.unreadable.length && !isRoot()) throw new NeedsRootError(scan.unreadable);
    await writeBaseline(inputs.baseline, inputs.root, scan.entries);
    await returnToCaller([inputs.baseline], coreLogger);
    // For the main step the runner starts; on the command line, main is given --baseline instead.
    if (inActions()) core.saveState('baseline', inputs.baseline);
    core.info(
      `baseline of ${inputs.root}: ${scan.entries.length} entries in ${((Date.now() - started) / 1000).toFixed(1)} s, written to ${inputs.baseline}`,
    );
  } catch (err) {
    await failOrRerunAsRoot(err, coreLogger);
  }
}

/**
 * The tree's software before the job's steps, beside the baseline (whether or not one is recorded):
 * the main step compares its own inventory with it for "What setup changed". Cheap: a few known files.
 */
async function recordInventory(root: string, baseline: string): Promise<void> {
  if (!baseline) {
    core.info(
      'no baseline path (no RUNNER_TEMP): no inventory recorded, "What setup changed" will have no before-state',
    );
    return;
  }
  const file = inventoryFileFor(baseline);
  const inventory = await readInventory(root, {
    path: splitPath(process.env.PATH),
    toolCache: process.env.RUNNER_TOOL_CACHE,
  });
  await writeInventoryFile(file, inventory);
  await returnToCaller([file], coreLogger);
  if (inActions()) core.saveState('inventory', file);
  core.info(`inventory of ${root}: ${inventory.packages.length} packages, written to ${file}`);
}

void pre();
