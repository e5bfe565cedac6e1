import type { Logger } from '../log.js';
import { savedState } from '../runner.js';
import { describeSetupCounts, type SetupReport } from '../summary.js';
import type { Overlay } from '../diff/overlay.js';
import { compareInventories } from '../inventory/diff.js';
import type { Inventory } from '../inventory/inventory.js';
import { readInventory, readMergedInventory, splitPath } from '../inventory/read.js';
import { inventoryFileFor, readInventoryFile } from '../inventory/record.js';

/**
 * What the job's setup steps installed: the tree's inventory now, compared with the one before them.
 * The before-state is the pre step's record (beside the baseline); else, for changes from an overlay,
 * the overlay's lower dirs read as one merged tree; else there is none, and only what the image holds
 * is counted. The PATH before is the pre step's, else the base image's `Env` (what a job started from
 * the base had).
 */
export async function readSetup(opts: {
  root: string;
  /** The baseline path the pre step wrote beside ('' when none). */
  baseline: string;
  /** The overlay the changes came from, when they did (its lower dirs: the tree before). */
  overlay: Overlay | undefined;
  baseEnv: string[] | undefined;
  log: Logger;
}): Promise<{ inventory: Inventory; setup: SetupReport }> {
  const toolCache = process.env.RUNNER_TOOL_CACHE;
  const inventory = await readInventory(opts.root, { path: splitPath(process.env.PATH), toolCache });
  const recorded = savedState('inventory') || (opts.baseline ? inventoryFileFor(opts.baseline) : '');
  const basePath = opts.baseEnv?.find((e) => e.startsWith('PATH='));
  const beforePath = basePath === undefined ? undefined : splitPath(basePath.slice('PATH='.length));

  let before: Inventory | null = recorded ? await readInventoryFile(recorded) : null;
  let from: SetupReport['before'] = before ? 'baseline' : 'none';
  if (!before && opts.overlay?.lower) {
    before = await readMergedInventory(opts.overlay.lower, { path: beforePath ?? [], toolCache });
    from = 'overlay';
  }
  const counts: SetupReport['counts'] = {};
  for (const p of inventory.packages) counts[p.ecosystem] = (counts[p.ecosystem] ?? 0) + 1;
  const changes = before ? compareInventories(before, inventory) : null;
  const pathBefore = from === 'baseline' ? before!.path : beforePath;
  const setup: SetupReport = {
    before: from,
    counts,
    ecosystems: changes?.ecosystems ?? null,
    path: pathBefore ? compareInventories({ packages: [], path: pathBefore }, inventory).path : null,
  };
  if (inventory.unreadable)
    opts.log.info(`inventory: ${inventory.unreadable} package entries could not be read and are not listed`);
  opts.log.info(`what setup changed: ${describeSetupCounts(setup)}`);
  return { inventory, setup };
}
