import { joinPath, parentOf } from '../util/paths.js';
import { EntryTable, type Entry } from '../walk/entries.js';

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
