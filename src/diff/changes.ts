import { existsSync } from 'node:fs';
import type { Logger } from '../log.js';
import type { Entry, WalkResult } from '../walk/walk.js';
import { BaselineError, diffAgainstBaseline } from './baseline.js';

export type ChangeMethod = 'baseline' | 'full';

export interface Changes {
  entries: Entry[];
  method: ChangeMethod;
  /** Why this method, for the log and summary. */
  reason: string;
}

export interface ChangeOptions {
  mode: 'auto' | 'baseline' | 'full';
  baseline: string;
  root: string;
  /** Whether a base image is known: a change set means nothing without the layers it applies to. */
  hasBase: boolean;
  scan: WalkResult;
  log: Logger;
}

/** Decides how changes are found, and finds them: against the baseline, or the whole tree. */
export async function findChanges(opts: ChangeOptions): Promise<Changes> {
  const full = (reason: string): Changes => ({ entries: opts.scan.entries, method: 'full', reason });
  if (opts.mode === 'full') return full('changes: full');
  if (!opts.hasBase) {
    if (opts.mode === 'baseline')
      throw new BaselineError(
        'changes: baseline needs base-image (or SNAPSHOT_BASE_IMAGE): the image the baseline describes',
      );
    return full('no base image: the whole tree is captured');
  }
  if (!opts.baseline || !existsSync(opts.baseline)) {
    if (opts.mode === 'baseline')
      throw new BaselineError(
        `changes: baseline, but no baseline at ${opts.baseline || '(no path: set baseline)'}: did the pre step run?`,
      );
    return full(
      'no baseline was recorded (the pre step did not run): the whole tree is captured on top of the base image',
    );
  }
  const set = await diffAgainstBaseline(
    opts.baseline,
    opts.root,
    opts.scan.entries,
    opts.scan.excluded,
    opts.scan.sockets,
  );
  opts.log.info(`${set.changed} entries new or changed, ${set.deleted} deleted since the baseline`);
  return {
    entries: set.entries,
    method: 'baseline',
    reason: `compared with the baseline recorded by the pre step (${opts.baseline})`,
  };
}
