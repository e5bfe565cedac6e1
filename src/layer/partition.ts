import { show } from '../log.js';
import { isInside } from '../util/paths.js';
import type { EntryTable } from '../walk/entries.js';

/** Bytes a tar header costs, counted so a tree of many empty files still splits. */
const HEADER_COST = 512;
/** The most layers one snapshot's changes take unless told otherwise: past that, the target is raised. */
export const MAX_LAYERS = 100;

export interface LayerPlan {
  /**
   * Indices into the entry list, ascending (so parents come first): what the layer holds, and the
   * directories above it that are in the list, each once.
   */
  indices: number[];
  /** The subtree this layer holds, for logs and history: `usr/lib` or `usr/{bin … games}`. */
  label: string;
  /** Uncompressed content bytes (file data, headers estimated). */
  bytes: number;
}

/**
 * Splits entries (depth-first, parents first) into layers of about `target` bytes by subtree.
 *
 * A directory whose subtree fits stays whole in one layer; a larger one is split among its children,
 * its own entry leading the first of its layers (unless it would be alone there). Siblings that fit
 * are packed together in name order. So layer boundaries depend only on the tree's shape near the change: editing a file inside
 * `usr/lib/python3` changes that subtree's layer, not the others. Every member of a hardlink group
 * is written in the layer of the group's last member, since a hardlink can only point within a layer.
 * Every layer then carries the directories above what it holds (see `withAncestors`).
 * Past `maxLayers` layers, the target doubles until they fit.
 */
export function partition(entries: EntryTable, target: number, maxLayers = MAX_LAYERS): LayerPlan[] {
  const { end, bytes, parent } = subtreeExtents(entries);
  let plans = split(entries, end, bytes, target);
  for (let t = target * 2; plans.length > maxLayers; t *= 2) plans = split(entries, end, bytes, t);
  const held = keepHardlinksTogether(entries, plans).filter((p) => p.indices.length > 0);
  return withAncestors(held, parent);
}

/**
 * For each entry: one past the index of its last descendant, the bytes of its whole subtree, and the
 * nearest directory above it in the list (-1 for none: at the top, or a change set without it).
 */
function subtreeExtents(entries: EntryTable): { end: Int32Array; bytes: Float64Array; parent: Int32Array } {
  const n = entries.length;
  const end = new Int32Array(n);
  const bytes = new Float64Array(n);
  const parent = new Int32Array(n);
  const stack: number[] = [];
  const stackPaths: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const path = entries.path(i);
    while (stack.length && !isInside(path, stackPaths[stackPaths.length - 1])) {
      const top = stack.pop()!;
      stackPaths.pop();
      end[top] = i;
      if (stack.length) bytes[stack[stack.length - 1]] += bytes[top];
    }
    bytes[i] = HEADER_COST + entries.size(i);
    parent[i] = stack.length ? stack[stack.length - 1] : -1;
    if (entries.kind(i) === 'dir') {
      stack.push(i);
      stackPaths.push(path);
    } else {
      end[i] = i + 1;
      if (stack.length) bytes[stack[stack.length - 1]] += bytes[i];
    }
  }
  while (stack.length) {
    const top = stack.pop()!;
    end[top] = n;
    if (stack.length) bytes[stack[stack.length - 1]] += bytes[top];
  }
  return { end, bytes, parent };
}

function split(entries: EntryTable, end: Int32Array, bytes: Float64Array, target: number): LayerPlan[] {
  const plans: LayerPlan[] = [];
  const level = (from: number, to: number, lead: number | null) => {
    let pending: number[] = lead === null ? [] : [lead];
    let pendingBytes = lead === null ? 0 : HEADER_COST;
    let first = -1;
    let last = -1;
    const flush = () => {
      // A split directory's entry alone (its first child split too) makes no layer of its own: every
      // layer below it carries it (withAncestors).
      if (first < 0) {
        pending = [];
        pendingBytes = 0;
        return;
      }
      plans.push({ indices: pending, label: labelOf(entries, lead, first, last), bytes: pendingBytes });
      pending = [];
      pendingBytes = 0;
      first = last = -1;
    };
    for (let i = from; i < to; i = end[i]) {
      if (bytes[i] > target && entries.kind(i) === 'dir') {
        flush();
        level(i + 1, end[i], i);
        continue;
      }
      if (first >= 0 && pendingBytes + bytes[i] > target) flush();
      for (let j = i; j < end[i]; j++) pending.push(j);
      pendingBytes += bytes[i];
      if (first < 0) first = i;
      last = i;
    }
    flush();
  };
  level(0, entries.length, null);
  return plans;
}

function labelOf(entries: EntryTable, lead: number | null, first: number, last: number): string {
  const parent = lead === null ? '' : show(entries.path(lead)) + '/';
  if (first < 0) return parent || '/';
  const name = (i: number) => {
    const path = entries.path(i);
    return show(path.subarray(path.lastIndexOf(0x2f) + 1));
  };
  if (first === last) return parent + name(first);
  return `${parent}{${name(first)} … ${name(last)}}`;
}

function keepHardlinksTogether(entries: EntryTable, plans: LayerPlan[]): LayerPlan[] {
  const layerOf = new Int32Array(entries.length);
  plans.forEach((p, l) => p.indices.forEach((i) => (layerOf[i] = l)));
  // The latest layer any member is in: every whiteout that could hide a member's directory
  // (deletions, opaque markers) is in that member's own or an earlier layer, never a later one.
  const home = new Map<string, number>();
  for (let i = 0; i < entries.length; i++) {
    const group = entries.linkGroup(i);
    if (group) home.set(group, Math.max(home.get(group) ?? 0, layerOf[i]));
  }
  const moved = new Set<number>();
  for (let i = 0; i < entries.length; i++) {
    const group = entries.linkGroup(i);
    const l = group === undefined ? undefined : home.get(group);
    if (l === undefined || l === layerOf[i]) continue;
    moved.add(i);
    plans[l].indices.push(i);
    plans[l].bytes += HEADER_COST + entries.size(i);
    plans[layerOf[i]].bytes -= HEADER_COST + entries.size(i);
  }
  if (moved.size === 0) return plans;
  for (const p of plans) {
    p.indices = p.indices.filter((i) => !moved.has(i) || plans[layerOf[i]] !== p);
    p.indices.sort((a, b) => a - b);
  }
  return plans;
}

/**
 * Adds to each layer the entries of the directories above what it holds, as Docker and BuildKit
 * layers have them. A split directory's entry is otherwise only in its first layer, and an overlay
 * runtime (Docker overlay2, containerd's overlayfs snapshotter, podman) makes the directory a later
 * layer needs as 0755 root:root stamped with the pull time, which hides the real one below it. A
 * layer that already holds a directory gets it once; one holding whole subtrees at the top gets nothing.
 */
function withAncestors(plans: LayerPlan[], parent: Int32Array): LayerPlan[] {
  const inLayer = new Int32Array(parent.length).fill(-1);
  plans.forEach((plan, l) => {
    const added: number[] = [];
    // Ascending: a member's parent that is a member too was seen first, its own parents with it.
    for (const i of plan.indices) {
      for (let a = parent[i]; a >= 0 && inLayer[a] !== l; a = parent[a]) {
        inLayer[a] = l;
        added.push(a);
      }
      inLayer[i] = l;
    }
    if (added.length === 0) return;
    plan.indices = plan.indices.concat(added).sort((a, b) => a - b);
    plan.bytes += HEADER_COST * added.length;
  });
  return plans;
}
