import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log.js';
import { buildFilter, type ScanOptions } from '../walk/scan.js';
import { readMounts } from '../walk/mountinfo.js';
import { BaselineError, baselineSource } from './baseline.js';
import { findOverlay, OverlayError, overlaySource, overlayStorage, type Overlay } from './overlay.js';
import { wholeTree, type ChangeSource, type FoundChanges } from './source.js';

/** How changes can be found. */
export const CHANGE_METHODS = ['overlay', 'baseline', 'full'] as const;
export type ChangeMethod = (typeof CHANGE_METHODS)[number];
/** What the `changes` input may ask for: one method, or `auto` to pick one. */
export const CHANGE_MODES = ['auto', ...CHANGE_METHODS] as const;
export type ChangeMode = (typeof CHANGE_MODES)[number];

/** What changed, with how it was found and why that way. */
export interface Changes extends FoundChanges {
  method: ChangeMethod;
  /** Why this method, for the log and summary. */
  reason: string;
  /** The overlay whose upper dir gave the changes (method `overlay`): its lower dirs are the tree before. */
  overlay?: Overlay;
}

export interface ChangeOptions {
  mode: ChangeMode;
  baseline: string;
  /** The `upper` input: root's overlay upper dir as this process sees it ('' when not given). */
  upper: string;
  /** Whether a base image is known: a change set means nothing without the layers it applies to. */
  hasBase: boolean;
  scan: ScanOptions;
  /** Walk the whole tree even when the source needs no walk (an overlay): for a recapture. */
  wholeWalk?: boolean;
  log: Logger;
}

/** How the changes will be found, and why: decided before anything is read. */
export type Choice =
  | { method: 'overlay'; overlay: Overlay; reason: string }
  | { method: 'baseline'; baseline: string; reason: string }
  | { method: 'full'; reason: string };

/**
 * Finds what changed under `root`: the overlay's upper dir, else the walk compared with the baseline
 * the pre step recorded, else the whole walk (see `chooseMethod`).
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
  const choice = chooseMethod(opts, overlay, existsSync);
  const ctx = { root, filter, log: opts.log, counters: opts.scan.counters };
  const found = await sourceOf(choice).read(ctx);
  if (opts.wholeWalk && !found.scan) {
    const whole = await wholeTree.read(ctx);
    found.scan = whole.scan;
    // What the whole walk could not read may be taken again (a recapture): it needs root too.
    found.unreadable = [
      ...new Map([...found.unreadable, ...whole.unreadable].map((p) => [p.toString('latin1'), p])).values(),
    ];
  }
  const overlayUsed = choice.method === 'overlay' ? { overlay: choice.overlay } : {};
  return { ...found, method: choice.method, reason: choice.reason, ...overlayUsed };
}

function sourceOf(choice: Choice): ChangeSource {
  switch (choice.method) {
    case 'overlay':
      return overlaySource(choice.overlay);
    case 'baseline':
      return baselineSource(choice.baseline);
    case 'full':
      return wholeTree;
  }
}

/**
 * The one place that decides how changes are found: an overlay's upper dir when `root` is an overlay
 * mount (or `upper` names its upper dir), else the baseline the pre step recorded, else the whole
 * tree. A change set needs a base image (the layers it applies to): without one, everything is taken.
 * Throws when the `changes` input asks for a method that cannot be used.
 */
export function chooseMethod(
  opts: Pick<ChangeOptions, 'mode' | 'baseline' | 'hasBase' | 'scan'>,
  overlay: Overlay | null,
  exists: (file: string) => boolean,
): Choice {
  const { root } = opts.scan;
  const { mode } = opts;
  if (mode === 'full') return { method: 'full', reason: 'changes: full' };
  if (!opts.hasBase) {
    if (mode !== 'auto')
      throw new BaselineError(
        `changes: ${mode} needs base-image (or SNAPSHOT_BASE_IMAGE): the image the changes apply to`,
      );
    return { method: 'full', reason: noBaseReason(opts, overlay, exists) };
  }
  if (mode !== 'baseline') {
    if (overlay)
      return {
        method: 'overlay',
        overlay,
        reason: overlay.given
          ? `the overlay upper dir given as upper (${overlay.upper}) holds the changes to ${root}`
          : `${root} is an overlay mount: its upper dir ${overlay.upper} holds the changes`,
      };
    if (mode === 'overlay')
      throw new OverlayError(
        `changes: overlay, but ${root} is not an overlay mount with a readable upper dir; if its upper dir is elsewhere in this job's view, set upper`,
      );
  }
  if (opts.baseline && exists(opts.baseline))
    return {
      method: 'baseline',
      baseline: opts.baseline,
      reason: `compared with the baseline recorded by the pre step (${opts.baseline})`,
    };
  if (mode === 'baseline')
    throw new BaselineError(
      `changes: baseline, but no baseline at ${opts.baseline || '(no path: set baseline)'}: did the pre step run?`,
    );
  return {
    method: 'full',
    reason:
      'no baseline was recorded (the pre step did not run): the whole tree is captured on top of the base image',
  };
}

/**
 * Why the whole tree is captured without a base image, naming the change set that went unused: the
 * changes alone, without the base image's layers below them, would not be a usable image.
 */
function noBaseReason(
  opts: Pick<ChangeOptions, 'baseline'>,
  overlay: Overlay | null,
  exists: (file: string) => boolean,
): string {
  const unused =
    overlay !== null
      ? `the overlay upper dir ${overlay.upper} is not used`
      : opts.baseline && exists(opts.baseline)
        ? `the baseline at ${opts.baseline} is not used`
        : '';
  return unused
    ? `no base image: the whole tree is captured (${unused}: changes need the base image's layers below them; set base-image to push only the changes)`
    : 'no base image: the whole tree is captured';
}
