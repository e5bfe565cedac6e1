import { constants } from 'node:os';
import { writeErrorLine } from './failure.js';

/**
 * SIGTERM (the runner cancelling the job, a timeout) or SIGINT (Ctrl-C) ends the run with one line
 * and the signal's exit code, after whatever was being written is finished or undone. The line says
 * what the run leaves behind: what is at `output`, or that tags hold complete images.
 *
 * Installed first, before the rest of the action is loaded (see index.ts): this module imports
 * nothing heavy, and the parts that write register what to do here instead of being imported.
 */

/**
 * Undoes or finishes something under way, synchronously, and says in a few words what it leaves
 * (`/x/layout still holds the earlier layout`).
 */
export type InterruptCleanup = () => string;

const cleanups = new Set<InterruptCleanup>();

/** What the run leaves when nothing registered says more: set once the inputs are known. */
let untouched = 'nothing was written';

/** Registers a cleanup for an interrupt; the returned function unregisters it. */
export function onInterrupt(cleanup: InterruptCleanup): () => void {
  cleanups.add(cleanup);
  return () => cleanups.delete(cleanup);
}

/** What an interrupted run leaves before it writes anything: its output untouched, tags unmoved. */
export function interruptedRunWrites(run: { writesLayout: boolean; output: string }): void {
  untouched = run.writesLayout
    ? `${run.output} was not touched`
    : 'a tag moves only to a complete image (its manifest is put last), so every tag holds its earlier image or this one';
}

export function stopCleanlyOnSignals(): void {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      // All synchronous: nothing else runs (no write, no second error line) before the exit.
      const left: string[] = [];
      for (const cleanup of cleanups) {
        try {
          left.push(cleanup());
        } catch (err) {
          left.push(`cleaning up failed: ${(err as Error).message}`); // the process is going away
        }
      }
      cleanups.clear();
      writeErrorLine(
        `interrupted by ${signal} before the run finished; ${(left.length ? left : [untouched]).join('; ')}; run it again`,
      );
      process.exit(128 + constants.signals[signal]);
    });
  }
}
