import type { Logger } from '../log.js';
import type { EntryTable } from '../walk/entries.js';
import type { Filter } from '../walk/filter.js';
import { walk, type Exclusion, type WalkResult } from '../walk/walk.js';

/** What a change source found: the entries to capture, in layer order, whiteouts included. */
export interface FoundChanges {
  entries: EntryTable;
  /** The walk of the whole root, when the source made one (an overlay's upper dir is all it reads). */
  scan?: WalkResult;
  changed?: number;
  deleted?: number;
  /** What the walk left out, with why. */
  excluded: Exclusion[];
  /** What this process could not read (see WalkResult). */
  unreadable: Buffer[];
}

/** What every source reads through: the root, and the exclusions that apply to any capture of it. */
export interface SourceContext {
  root: string;
  filter: Filter;
  log: Logger;
  /** Bumped once per entry looked at, for progress lines. */
  counters?: { entries: number };
}

/**
 * One way to find what changed under a root since its base image. Today: an overlay's upper dir
 * (diff/overlay.ts), the walk compared with the pre step's baseline (diff/baseline.ts), or the whole
 * walk (below). Another way (a block-device diff, say) is one more of these, a name in
 * CHANGE_METHODS, and a rule in chooseMethod (diff/changes.ts) for when it applies.
 */
export interface ChangeSource {
  read(ctx: SourceContext): Promise<FoundChanges>;
}

/** Everything under the root: what a snapshot takes without a base image, or with `changes: full`. */
export const wholeTree: ChangeSource = {
  async read({ root, filter, log, counters }) {
    const scan = await walk({ root, filter, log, keepIdentity: false, counters });
    return { entries: scan.entries, scan, excluded: scan.excluded, unreadable: scan.unreadable };
  },
};
