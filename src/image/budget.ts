import type { HistoryEntry } from '../content/oci.js';

/**
 * Layers an image may have at most: Docker (overlay2) refuses to run an image past 125 layers ("max
 * depth exceeded"), podman past about as many, containerd's overlayfs stacks one lower directory per
 * layer.
 */
export const LAYER_LIMIT = 127;
/** Past about this many layers Docker 20.10 (overlay2) failed to run an image, podman too. */
export const DOCKER_LAYERS = 125;

/**
 * Who made a layer, in its history entry. A capture of the whole tree is where a chain starts: its
 * layers are never merged. Layers of changes on top of a base are what later snapshots may merge.
 */
export const CREATED_BY = { wholeTree: 'snapshot-action', changes: 'snapshot-action: changes' };

/**
 * How many of the image's top layers earlier snapshots made on top of a base (above the image the
 * chain started from, whoever made it), from the history: one entry per layer, `empty_layer` ones
 * aside. 0 when the history does not map onto the layers one to one: then nothing is known to be
 * ours, and nothing is merged.
 */
export function layersMadeBySnapshots(layerCount: number, history: HistoryEntry[]): number {
  const layered = history.filter((h) => !h.empty_layer);
  if (layered.length !== layerCount) return 0;
  let n = 0;
  while (n < layered.length && layered[layered.length - 1 - n].created_by === CREATED_BY.changes) n++;
  return n;
}

/** The history of the image's first `keep` layers: their entries and the empty ones among them. */
export function historyOfFirstLayers(history: HistoryEntry[], keep: number): HistoryEntry[] {
  const kept: HistoryEntry[] = [];
  let layers = 0;
  for (const h of history) {
    if (!h.empty_layer && layers === keep) break;
    kept.push(h);
    if (!h.empty_layer) layers++;
  }
  return kept;
}

export interface BudgetPlan {
  /** Top layers of the base to merge into the new ones (0: none). */
  merge: number;
  /** Most layers the new content may take. */
  newLayers: number;
}

/**
 * Keeps base + new layers + the marker within `maxLayers`. While the base leaves room for a new layer
 * and the marker, nothing is merged and the new content takes at most the room left. When it does
 * not, the top layers earlier snapshots made are merged (recaptured from the live tree) so that a
 * quarter of the budget is free again: compaction then comes once every `maxLayers / 4` generations
 * or so, merges the most recent layers, and never the base the chain started from.
 */
export function planBudget(opts: {
  baseLayers: number;
  madeBySnapshots: number;
  maxLayers: number;
}): BudgetPlan {
  const { baseLayers, madeBySnapshots, maxLayers } = opts;
  const marker = 1;
  if (baseLayers + 1 + marker <= maxLayers) return { merge: 0, newLayers: maxLayers - baseLayers - marker };
  const free = Math.max(1, Math.floor(maxLayers / 4));
  // After merging, the merged layers and this generation's changes are one set of new layers.
  const merge = Math.min(madeBySnapshots, baseLayers - (maxLayers - free - marker - 1));
  const left = baseLayers - merge;
  // The merged paths and the changes take at most half the room freed, so the next generations have
  // the rest, and compaction does not come again at once.
  const room = Math.min(maxLayers - left - marker, Math.floor(free / 2));
  return { merge: Math.max(0, merge), newLayers: Math.max(1, room) };
}
