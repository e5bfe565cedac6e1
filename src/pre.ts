import './heap.js';
import * as core from '@actions/core';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { MARKER_PATH } from './image/marker.js';
import { findOverlay } from './diff/overlay.js';
import { readMounts } from './walk/mountinfo.js';
import { getInputs, InputError } from './inputs.js';
import { coreLogger, inActions } from './report.js';
import { scanRoot } from './walk/scan.js';
import { writeBaseline } from './diff/baseline.js';
import { LayerCache } from './registry/layer-cache.js';
import { isRoot, NeedsRootError, rerunUnderSudo, returnToCaller } from './privileges.js';
import { reportFailure } from './failure.js';

/**
 * The pre step, run by the runner before the job's steps: fails early on bad inputs, and records the
 * baseline (the tree as the base image left it) that the main step compares against. From the command
 * line: `node dist/pre/index.js --root R --baseline FILE`.
 */
async function pre(): Promise<void> {
  const argv = inActions() ? [] : process.argv.slice(2);
  try {
    const inputs = getInputs(argv, process.env, { pre: true });
    if (inputs.changes === 'full') return;
    const hasMarker = existsSync(path.join(inputs.root, MARKER_PATH));
    if (!inputs.baseImage && !hasMarker && inputs.changes === 'auto') {
      core.info(
        `no base image known (base-image, SNAPSHOT_BASE_IMAGE, /${MARKER_PATH}): no baseline recorded, the snapshot will capture the whole tree`,
      );
      return;
    }
    if (inputs.changes === 'auto' && (await findOverlay(inputs.root, await readMounts()))) {
      core.info(
        `${inputs.root} is an overlay mount: its upper dir will give the changes, no baseline needed`,
      );
      return;
    }
    if (!inputs.baseline) throw new InputError('baseline: no path given and no RUNNER_TEMP to put it in');
    const started = Date.now();
    const scan = await scanRoot({
      root: inputs.root,
      exclude: inputs.exclude,
      include: inputs.include,
      ownPaths: [inputs.baseline, LayerCache.defaultPath()],
      log: coreLogger,
    });
    if (scan.unreadable.length && !isRoot()) throw new NeedsRootError(scan.unreadable);
    await writeBaseline(inputs.baseline, inputs.root, scan.entries);
    await returnToCaller([inputs.baseline], coreLogger);
    core.saveState('baseline', inputs.baseline);
    core.info(
      `baseline of ${inputs.root}: ${scan.entries.length} entries in ${((Date.now() - started) / 1000).toFixed(1)} s, written to ${inputs.baseline}`,
    );
  } catch (err) {
    if (err instanceof NeedsRootError) {
      const code = await rerunUnderSudo(coreLogger);
      if (code !== null) {
        process.exitCode = code;
        return;
      }
    }
    reportFailure(err, coreLogger.debug);
  }
}

void pre();
