import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log.js';
import { buildFilter, type ScanOptions } from '../walk/scan.js';
import type { EntryTable } from '../walk/entries.js';
import { walk, type Exclusion, type WalkResult } from '../walk/walk.js';
import { BaselineError, diffAgainstBaseline } from './baseline.js';
import { readMounts } from '../walk/mountinfo.js';
import { findOverlay, overlayChanges, OverlayError, overlayStorage, type Overlay } from './overlay.js';

/** How changes can be found. */
export const CHANGE_METHODS = ['overlay', 'baseline', 'full'] as const;
export type ChangeMethod = (typeof CHANGE_METHODS)[number];
/** What the `changes` input may ask for: one method, or `auto` to pick one. */
export const CHANGE_MODES = ['auto', ...CHANGE_METHODS] as const;
export type ChangeMode = (typeof CHANGE_MODES)[number];

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
  mode: ChangeMode;
  baseline: string;
  /** The `upper` input: root's overlay upper dir as this process sees it ('' when not given). */
  upper: string;
  /** Whether a base image is known: a change set means nothing without the layers it applies to. */
  hasBase: boolean;
  scan: ScanOptions;
  log: Logger;
}

/**
 * Decides how changes are found, and finds them: an overlay's upper dir when `root` is an overlay
 * mount (or `upper` names its upper dir), else the baseline the pre step recorded, else the whole tree.
 */
export async function findChanges(opts: ChangeOptions): Promise<Changes> {
  const { root } = opts.scan;
  const overlay = await findOverlay(root, await readMounts(), opts.upper);
  const storage = overlayStorage(overlay).filter((d) => !path.relative(root, d).startsWith('..'));
  if (storage.length)
    opts.log.info(`left out: the overlay's own storage inside ${root} (${storage.join(', ')})`);
  const { filter } = await buildFilter({
    ...opts.scan,
    ownPaths: [...opts.scan.ownPaths, ...storage],
  });
  const wanted = (m: ChangeMethod) => opts.mode === m || opts.mode === 'auto';
  if (opts.mode !== 'full' && !opts.hasBase) {
    if (opts.mode !== 'auto')
      throw new BaselineError(
        `changes: ${opts.mode} needs base-image (or SNAPSHOT_BASE_IMAGE): the image the changes apply to`,
      );
  } else if (wanted('overlay') && opts.hasBase) {
    if (overlay) {
      if (overlay.given && !overlay.mounted)
        opts.log.warn(
          `mountinfo shows no overlay mounted at ${root}: taking upper ${overlay.upper} as its upper dir, as given`,
        );
      const set = await overlayChanges(root, overlay, filter, opts.log);
      return {
        ...set,
        method: 'overlay',
        reason: overlay.given
          ? `the overlay upper dir given as upper (${overlay.upper}) holds the changes to ${root}`
          : `${root} is an overlay mount: its upper dir ${overlay.upper} holds the changes`,
      };
    }
    if (opts.mode === 'overlay')
      throw new OverlayError(
        `changes: overlay, but ${root} is not an overlay mount with a readable upper dir; if its upper dir is elsewhere in this job's view, set upper`,
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
  if (!opts.hasBase) return full(noBaseReason(opts, overlay));
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

/**
 * Why the whole tree is captured without a base image, naming the change set that went unused: the
 * changes alone, without the base image's layers below them, would not be a usable image.
 */
function noBaseReason(opts: ChangeOptions, overlay: Overlay | null): string {
  const unused =
    overlay !== null
      ? `the overlay upper dir ${overlay.upper} is not used`
      : opts.baseline && existsSync(opts.baseline)
        ? `the baseline at ${opts.baseline} is not used`
        : '';
  return unused
    ? `no base image: the whole tree is captured (${unused}: changes need the base image's layers below them; set base-image to push only the changes)`
    : 'no base image: the whole tree is captured';
}
