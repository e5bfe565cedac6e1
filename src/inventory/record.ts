import { readFile, writeFile } from 'node:fs/promises';
import { writeAtomically } from '../util/atomic.js';
import type { Inventory } from './inventory.js';

/**
 * The pre step's inventory (the tree before the job's setup steps) sits beside the baseline: the main
 * step finds it from the same path, whether or not a baseline was written.
 */
export function inventoryFileFor(baseline: string): string {
  return `${baseline}.inventory.json`;
}

/** Written as the baseline is: atomically, for its owner's eyes only (it lists the installed software). */
export async function writeInventoryFile(file: string, inventory: Inventory): Promise<void> {
  await writeAtomically(file, 'inventory', (tmp) =>
    writeFile(tmp, JSON.stringify(inventory) + '\n', { mode: 0o600 }),
  );
}

/** The recorded inventory, or null when there is none or it is not one (then there is no before-state). */
export async function readInventoryFile(file: string): Promise<Inventory | null> {
  const text = await readFile(file, 'utf8').catch(() => null);
  if (text === null) return null;
  try {
    const inv = JSON.parse(text) as Inventory;
    return Array.isArray(inv?.packages) && Array.isArray(inv.path) ? inv : null;
  } catch {
    return null;
  }
}
