import { joinPath, parentOf } from '../util/paths.js';
import { EntryTable, type Entry } from '../walk/entries.js';
import type { Exclusion } from '../walk/walk.js';

/** What a comparison found: the entries to write, whiteouts included, in layer order. */
export interface ChangeSet {
  entries: EntryTable;
  changed: number;
  deleted: number;
}

const WH = Buffer.from('.wh.');
const OPAQUE = Buffer.from('.wh..wh..opq');

function baseName(p: Buffer): Buffer {
  return p.subarray(p.lastIndexOf(0x2f) + 1);
}

/**
 * The entry of a whiteout named `p`: an empty regular file, every field fixed, so the same deletion
 * always gives the same bytes.
 */
function whiteoutEntry(p: Buffer): Entry {
  return {
    path: p,
    kind: 'whiteout',
    mode: 0,
    uid: 0,
    gid: 0,
    size: 0,
    allocated: 0,
    mtimeSec: 0,
    mtimeNsec: 0,
    ctimeSec: 0,
    ctimeNsec: 0,
    ino: 0,
  };
}

/**
 * Places whiteouts (image-spec "Whiteouts"): right after their parent directory's entry, before its
 * other contents, sorted; an opaque directory's `.wh..wh..opq` first of all. Deletions at the top of
 * the tree come before everything. Each whiteout's parent directory must be among `entries`.
 */
export function groupWhiteouts(entries: Iterable<Entry>, deletions: Buffer[], opaque: Buffer[]): EntryTable {
  const byParent = new Map<string, Entry[]>();
  const add = (parent: Buffer, e: Entry) => {
    const key = parent.toString('latin1');
    const siblings = byParent.get(key);
    if (siblings) siblings.push(e);
    else byParent.set(key, [e]);
  };
  for (const dir of opaque) add(dir, whiteoutEntry(joinPath(dir, OPAQUE)));
  const sorted = [...deletions].sort((a, b) => Buffer.compare(baseName(a), baseName(b)));
  for (const d of sorted)
    add(parentOf(d), whiteoutEntry(joinPath(parentOf(d), Buffer.concat([WH, baseName(d)]))));

  const out = EntryTable.from(byParent.get('') ?? []);
  for (const e of entries) {
    out.push(e);
    if (e.kind === 'dir') for (const w of byParent.get(e.path.toString('latin1')) ?? []) out.push(w);
  }
  return out;
}

/**
 * Whether a path is, or lies below, one the walk left out (excluded, or a socket): such a path is
 * not captured, so it is not deleted either, and gets no whiteout.
 */
export function leftOutBy(excluded: Exclusion[], sockets: Buffer[]): (p: Buffer) => boolean {
  const leftOut = new Set([...excluded.map((e) => e.path), ...sockets].map((p) => p.toString('latin1')));
  return (p) => {
    for (let q = p; q.length; q = parentOf(q)) if (leftOut.has(q.toString('latin1'))) return true;
    return false;
  };
}

/**
 * The change set of the entries marked 1 in `include` (walk order) and of `deletions`: the parent
 * directories of each come along, so every entry and whiteout has its directory in the layer.
 * `complete` is given the indices taken before they are read (a walk that left xattrs unread reads
 * theirs there).
 */
export async function changeSet(opts: {
  entries: EntryTable;
  include: Uint8Array;
  deletions: Buffer[];
  opaque: Buffer[];
  changed: number;
  complete: (indices: number[]) => Promise<void>;
}): Promise<ChangeSet> {
  const { entries, include, deletions } = opts;
  const dirs = new Map<string, number>();
  for (let i = 0; i < entries.length; i++)
    if (entries.kind(i) === 'dir') dirs.set(entries.path(i).toString('latin1'), i);
  const needParents = (p: Buffer) => {
    for (let q = parentOf(p); q.length; q = parentOf(q)) {
      const i = dirs.get(q.toString('latin1'));
      if (i === undefined || include[i] === 2) break;
      include[i] ||= 2;
    }
  };
  for (let i = 0; i < entries.length; i++) if (include[i] === 1) needParents(entries.path(i));
  for (const d of deletions) {
    const parent = parentOf(d);
    if (parent.length === 0) continue;
    const i = dirs.get(parent.toString('latin1'));
    if (i !== undefined) include[i] ||= 2;
    needParents(parent);
  }
  const taken: number[] = [];
  for (let i = 0; i < entries.length; i++) if (include[i]) taken.push(i);
  await opts.complete(taken);
  function* selected() {
    for (const i of taken) yield entries.get(i);
  }
  return {
    entries: groupWhiteouts(selected(), deletions, opts.opaque),
    changed: opts.changed,
    deleted: deletions.length,
  };
}
