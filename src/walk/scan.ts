import type { Logger } from '../log.js';
import { Filter } from './filter.js';
import { readMounts, readSwapFiles } from './mountinfo.js';
import { walk, type WalkResult } from './walk.js';

export interface ScanOptions {
  root: string;
  exclude: string[];
  include: string[];
  /** Host paths this run writes to (layout, caches): never captured. */
  ownPaths: string[];
  log: Logger;
}

/** Walks the root with the default exclusions (mounts, swap, the runner's temp dir) and the user's. */
export async function scanRoot(opts: ScanOptions): Promise<WalkResult> {
  const filter = new Filter({
    root: opts.root,
    mounts: await readMounts(),
    swapFiles: await readSwapFiles(),
    hostPathsToDrop: [
      ...opts.ownPaths.map((path) => ({ path, reason: 'written by this action' })),
      ...(process.env.RUNNER_TEMP
        ? [{ path: process.env.RUNNER_TEMP, reason: "runner's temp directory" }]
        : []),
    ],
    exclude: opts.exclude,
    include: opts.include,
  });
  return walk({ root: opts.root, filter, log: opts.log });
}
