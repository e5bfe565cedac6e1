import { existsSync } from 'node:fs';
import type { Logger } from '../log.js';
import { buildFilter, type ScanOptions } from '../walk/scan.js';
import type { EntryTable } from '../walk/entries.js';
import { walk, type Exclusion, type WalkResult } from '../walk/walk.js';
import { BaselineError, diffAgainstBaseline } from './baseline.js';
import { findOverlay, overlayChanges, OverlayError } from './overlay.js';

export type ChangeMethod = 'overlay' | 'baseline' | 'full';

export interface Changes {
  entries: EntryTable;
  method: ChangeMethod;
  /** Why this method, for the log and summary. */
  reason: string;
  /** The walk of the whole root (not made for an overlay, whose upper dir is all that is read). */
  scan?: WalkResult;
  changed?: number;
  deleted?: number;
  /** What the walk left out, with why. */
  excluded: Exclusion[];
  /** What this process could not read (see WalkResult). */
  unreadable: Buffer[];
}

export interface ChangeOptions {
  mode: 'auto' | 'overlay' | 'baseline' | 'full';
  baseline: string;
  /** Whether a base image is known: a change set means nothing without the layers it applies to. */
  hasBase: boolean;
  scan: ScanOptions;
  log: Logger;
}

/**
 * Decides how changes are found, and finds them: an overlay's upper dir when `root` is an overlay
 * mount, else the baseline the pre step recorded, else the whole tree.
 */
export async function findChanges(opts: ChangeOptions): Promise<Changes> {
  const { root } = opts.scan;
  const { filter, mounts } = await buildFilter(opts.scan);
  const wanted = (m: ChangeMethod) => opts.mode === m || opts.mode === 'auto';
  if (opts.mode !== 'full' && !opts.hasBase) {
    if (opts.mode !== 'auto')
      throw new BaselineError(
        `changes: ${opts.mode} needs base-image (or SNAPSHOT_BASE_IMAGE): the image the changes apply to`,
      );
  } else if (wanted('overlay') && opts.hasBase) {
    const overlay = await findOverlay(root, mounts);
    if (overlay) {
      const set = await overlayChanges(root, overlay, filter, opts.log);
      return {
        ...set,
        method: 'overlay',
        reason: `${root} is an overlay mount: its upper dir ${overlay.upper} holds the changes`,
      };
    }
    if (opts.mode === 'overlay')
      throw new OverlayError(
        `changes: overlay, but ${root} is not an overlay mount with a readable upper dir`,
      );
  }

  const baseline =
    opts.mode !== 'full' && opts.hasBase && opts.baseline && existsSync(opts.baseline) ? opts.baseline : null;
  const scan = await walk({
    root,
    filter,
    log: opts.log,
    keepIdentity: baseline !== null,
    counters: opts.scan.counters,
  });
  const full = (reason: string): Changes => ({
    entries: scan.entries,
    method: 'full',
    reason,
    scan,
    excluded: scan.excluded,
    unreadable: scan.unreadable,
  });
  if (opts.mode === 'full') return full('changes: full');
  if (!opts.hasBase) return full('no base image: the whole tree is captured');
  if (!baseline) {
    if (opts.mode === 'baseline')
      throw new BaselineError(
        `changes: baseline, but no baseline at ${opts.baseline || '(no path: set baseline)'}: did the pre step run?`,
      );
    return full(
      'no baseline was recorded (the pre step did not run): the whole tree is captured on top of the base image',
    );
  }
  const set = await diffAgainstBaseline(baseline, root, scan.entries, scan.excluded, scan.sockets);
  return {
    ...set,
    method: 'baseline',
    reason: `compared with the baseline recorded by the pre step (${baseline})`,
    scan,
    excluded: scan.excluded,
    unreadable: scan.unreadable,
  };
}
