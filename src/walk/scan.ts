import type { Logger } from '../log.js';
import { Filter } from './filter.js';
import { readMounts, readSwapFiles, type Mount } from './mountinfo.js';
import { SecretFiles } from './secrets.js';
import path from 'node:path';
import { walk, type WalkResult } from './walk.js';

export interface ScanOptions {
  root: string;
  exclude: string[];
  include: string[];
  /** Host paths this run writes to (layout, caches): never captured. */
  ownPaths: string[];
  /** `/`-rooted paths the action writes anew (the marker): never captured from the tree. */
  rewritten: Array<{ path: string; reason: string }>;
  log: Logger;
  /** Bumped once per entry looked at, for progress lines. */
  counters?: { entries: number };
}

/**
 * The default exclusions (virtual mounts, swap, the runner's own directories, credentials) plus the
 * user's.
 */
export async function buildFilter(opts: ScanOptions): Promise<{ filter: Filter; mounts: Mount[] }> {
  const mounts = await readMounts();
  const { RUNNER_TEMP, RUNNER_WORKSPACE, HOME } = process.env;
  const filter = new Filter({
    root: opts.root,
    mounts,
    swapFiles: await readSwapFiles(),
    hostPathsToDrop: [
      ...opts.ownPaths.map((p) => ({ path: p, reason: 'written by this action' })),
      // The workspace (`_work/<repo>/<repo>`) and the tool cache (`_work/_tool`) stay: they are the point.
      ...(RUNNER_TEMP ? [{ path: RUNNER_TEMP, reason: "the runner's temp directory", warn: true }] : []),
      ...(RUNNER_WORKSPACE
        ? [
            {
              path: path.join(path.dirname(RUNNER_WORKSPACE), '_actions'),
              reason: "the runner's downloaded actions",
              warn: true,
            },
          ]
        : []),
    ],
    exclude: opts.exclude,
    include: opts.include,
    secrets: new SecretFiles(opts.root, HOME),
    rewritten: opts.rewritten,
  });
  return { filter, mounts };
}

/** Walks the whole root with those exclusions, keeping what a baseline records. */
export async function scanRoot(opts: ScanOptions): Promise<WalkResult> {
  const { filter } = await buildFilter(opts);
  return walk({ root: opts.root, filter, log: opts.log, keepIdentity: true, counters: opts.counters });
}
