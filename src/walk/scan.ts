import type { Logger } from '../log.js';
import { Filter } from './filter.js';
import { readMounts, readSwapFiles, type Mount } from './mountinfo.js';
import { walk, type WalkResult } from './walk.js';

export interface ScanOptions {
  root: string;
  exclude: string[];
  include: string[];
  /** Host paths this run writes to (layout, caches): never captured. */
  ownPaths: string[];
  log: Logger;
}

/** The default exclusions (virtual mounts, swap, the runner's temp dir) plus the user's. */
export async function buildFilter(opts: ScanOptions): Promise<{ filter: Filter; mounts: Mount[] }> {
  const mounts = await readMounts();
  const filter = new Filter({
    root: opts.root,
    mounts,
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
  return { filter, mounts };
}

/** Walks the whole root with those exclusions. */
export async function scanRoot(opts: ScanOptions): Promise<WalkResult> {
  const { filter } = await buildFilter(opts);
  return walk({ root: opts.root, filter, log: opts.log });
}
