import { isInside, parentOf } from '../util/paths.js';
import type { EntryTable } from '../walk/entries.js';
import type { Exclusion } from '../walk/walk.js';
import { changeSet, leftOutBy, type ChangeSet } from './whiteouts.js';

const WH = '.wh.';
const OPAQUE = '.wh..wh..opq';

/**
 * The paths some layers touched: written (any entry), deleted (a whiteout) or made opaque. Their state
 * in the live tree is what those layers amount to, on top of the layers below them.
 */
export class TouchedPaths {
  /** latin1 keys of paths written or deleted. */
  readonly paths = new Set<string>();
  /**
   * latin1 keys of directories whose lower content must stay hidden: made opaque, or deleted (a
   * directory deleted and made again holds only what it holds now, not what the layers below had).
   */
  readonly hidden = new Set<string>();

  /** One entry name of a layer: a whiteout names the path it deletes, or its opaque directory. */
  addName(name: Buffer): void {
    const slash = name.lastIndexOf(0x2f);
    const base = name.subarray(slash + 1).toString('latin1');
    const dir = slash < 0 ? '' : name.subarray(0, slash).toString('latin1');
    // Names no layer of ours holds (the root, `.` or `..`, an opaque root): never a whiteout of `/`.
    const parts = name.toString('latin1').split('/');
    if (!name.length || parts.some((p) => p === '' || p === '.' || p === '..')) return;
    if (base === OPAQUE) {
      if (dir) this.hidden.add(dir);
    } else if (base.startsWith(WH)) {
      const gone = (dir ? dir + '/' : '') + base.slice(WH.length);
      this.paths.add(gone);
      this.hidden.add(gone);
    } else this.paths.add(name.toString('latin1'));
  }

  /** Every entry of a change set (whiteouts included). */
  addEntries(entries: EntryTable): void {
    for (let i = 0; i < entries.length; i++) this.addName(entries.path(i));
  }

  get size(): number {
    return new Set([...this.paths, ...this.hidden]).size;
  }
}

/**
 * The live state of `touched`, taken from a walk of the whole tree: the entries there (an opaque
 * directory with everything below it), their parent directories, and a whiteout for each touched
 * path that is gone. Placed on the layers below the ones that touched these paths, it gives the tree
 * as it is now. Paths the walk left out (excluded, sockets) get no whiteout: they are not captured,
 * not deleted. `complete` is given the indices of the entries taken before they are read (a walk
 * that left xattrs unread reads theirs there).
 */
export async function recapture(
  tree: EntryTable,
  touched: TouchedPaths,
  leftOut: { excluded: Exclusion[]; sockets: Buffer[] },
  complete: (indices: number[]) => Promise<void> = async () => {},
): Promise<ChangeSet> {
  const isLeftOut = leftOutBy(leftOut.excluded, leftOut.sockets);

  const include = new Uint8Array(tree.length); // 1: touched, 2: a parent of something touched
  const present = new Map<string, number>();
  let opaqueDir: Buffer | null = null;
  const opaque: Buffer[] = [];
  let changed = 0;
  for (let i = 0; i < tree.length; i++) {
    const p = tree.path(i);
    const key = p.toString('latin1');
    present.set(key, i);
    if (opaqueDir && !isInside(p, opaqueDir)) opaqueDir = null;
    if (!opaqueDir && touched.hidden.has(key) && tree.kind(i) === 'dir') {
      opaqueDir = p;
      opaque.push(p);
    }
    if (opaqueDir || touched.paths.has(key)) {
      include[i] = 1;
      changed++;
    }
  }
  // A gone path gets a whiteout where its parent still stands; below a gone parent, that parent's
  // own whiteout (it was touched too) hides everything.
  const deletions = new Map<string, Buffer>();
  for (const key of [...touched.paths, ...touched.hidden]) {
    const p = Buffer.from(key, 'latin1');
    if (present.has(key) || isLeftOut(p)) continue;
    const parent = parentOf(p);
    if (parent.length && !present.has(parent.toString('latin1'))) continue;
    deletions.set(key, p);
  }
  return changeSet({ entries: tree, include, deletions: [...deletions.values()], opaque, changed, complete });
}
