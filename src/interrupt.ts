import * as core from '@actions/core';
import { constants } from 'node:os';
import { abortLayoutsSync } from './layout/layout.js';

/**
 * SIGTERM (the runner cancelling the job, a timeout) or SIGINT (Ctrl-C) ends the run with one line
 * and the signal's exit code, once a layout being written is removed: its staging directory goes,
 * what was at `output` stays. A push needs nothing more: a tag moves only with its manifest, last.
 */
export function stopCleanlyOnSignals(): void {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      // All synchronous: nothing else runs (no write, no second error line) before the exit.
      abortLayoutsSync();
      core.setFailed(
        `interrupted by ${signal} before the snapshot finished; nothing partial was left, run it again`,
      );
      process.exit(128 + constants.signals[signal]);
    });
  }
}
