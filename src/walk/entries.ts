import { joinPath, parentOf } from '../util/paths.js';
import type { Xattrs } from './xattrs.js';

/** `whiteout` marks a deletion in a change set (`.wh.<name>`); the walk never makes one. */
export type Kind = 'file' | 'dir' | 'symlink' | 'fifo' | 'char' | 'block' | 'whiteout';

/** One filesystem entry as it will be written to a layer. */
export interface Entry {
  /** Path relative to the root, raw bytes, no leading `/`. */
  path: Buffer;
  kind: Kind;
  /** Permission bits including suid/sgid/sticky. */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Bytes actually allocated on disk (st_blocks × 512): tells a sparse file. Read by the walk only. */
  allocated?: number;
  mtimeSec: number;
  mtimeNsec: number;
  /**
   * Status change time: moves on chmod, chown, setcap and writes, even when mtime is put back. With
   * the inode, only a baseline needs it: 0 in a table that does not keep them (see `EntryTable`).
   */
  ctimeSec: number;
  ctimeNsec: number;
  /** Inode number (as a double: exact below 2^53, enough to notice a replaced file). */
  ino: number;
  /** `dev:ino` for files with more than one link: the hardlink group they belong to. */
  linkGroup?: string;
  linkTarget?: Buffer;
  devMajor?: number;
  devMinor?: number;
  xattrs?: Xattrs;
  /** Bytes written instead of the file's own (a git config with its token removed); `size` is theirs. */
  content?: Buffer;
}

const KINDS: Kind[] = ['file', 'dir', 'symlink', 'fifo', 'char', 'block', 'whiteout'];
const KIND_CODE = new Map(KINDS.map((k, i) => [k, i]));

/** The fields only some entries have: kept aside, so the common entry costs nothing for them. */
type Extra = Pick<Entry, 'linkGroup' | 'linkTarget' | 'devMajor' | 'devMinor' | 'xattrs' | 'content'>;

/** Entries per chunk of columns: columns grow a chunk at a time, never copied to a larger array. */
const CHUNK_BITS = 16;
const CHUNK = 1 << CHUNK_BITS;
const SLOT = CHUNK - 1;
/** Names and link targets are packed into slabs this big. */
const SLAB = 1024 * 1024;
/** The parent of an entry kept by its whole path. */
export const NO_PARENT = -1;

class Chunk {
  kind = new Uint8Array(CHUNK);
  mode = new Uint16Array(CHUNK);
  uid = new Uint32Array(CHUNK);
  gid = new Uint32Array(CHUNK);
  size = new Float64Array(CHUNK);
  mtimeSec = new Float64Array(CHUNK);
  mtimeNsec = new Uint32Array(CHUNK);
  /** The directory entry this one is named in, or NO_PARENT when the name is the whole path. */
  parent = new Int32Array(CHUNK);
  nameSlab = new Uint32Array(CHUNK);
  nameStart = new Uint32Array(CHUNK);
  /** Of the whole path. */
  pathLength = new Uint32Array(CHUNK);
  identity: { ctimeSec: Float64Array; ctimeNsec: Uint32Array; ino: Float64Array } | null;

  constructor(identity: boolean) {
    this.identity = identity
      ? { ctimeSec: new Float64Array(CHUNK), ctimeNsec: new Uint32Array(CHUNK), ino: new Float64Array(CHUNK) }
      : null;
  }
}

/**
 * A list of entries stored by column: numbers in typed arrays, names packed into shared slabs, the
 * rare fields (link targets, xattrs, devices, hardlink groups) in a side map. A root filesystem has
 * millions of entries; as objects each cost about 400 bytes (the object, a Buffer view for its path,
 * the path's bytes), here about 47 plus the entry's own name. A path is its parent's path and a name,
 * as the walk found it, so the directories' names are not stored again for each of their entries
 * (on a rootfs, names average 16 bytes and paths 83). `get` and `path` build an entry on demand.
 *
 * ctime and inode (20 bytes an entry) are kept only when `keepsIdentity`: a baseline compares them, a
 * capture never reads them. The allocated size is not kept: the walk has used it by then.
 */
export class EntryTable implements Iterable<Entry> {
  length = 0;
  /** Sum of every entry's size, kept as entries come and change. */
  private totalSize = 0;
  private readonly chunks: Chunk[] = [];
  private readonly slabs: Buffer[] = [];
  private slabUsed = SLAB;
  private readonly extras = new Map<number, Extra>();
  /** The directory paths last built, outermost first: entries are mostly read in walk order. */
  private readonly dirIndices: number[] = [];
  private readonly dirPaths: Buffer[] = [];

  constructor(readonly keepsIdentity = false) {}

  static from(entries: Iterable<Entry>, keepsIdentity = false): EntryTable {
    const table = new EntryTable(keepsIdentity);
    for (const e of entries) table.push(e);
    return table;
  }

  /** `bytes` copied into the table's slabs (a link target kept as long as the table). */
  keep(bytes: Buffer): Buffer {
    const { slab, start } = this.reserve(bytes.length);
    bytes.copy(slab, start);
    return slab.subarray(start, start + bytes.length);
  }

  /**
   * Adds an entry. `parent`, the index of the directory entry whose path `e.path` extends by one name,
   * lets the table keep just that name; without it the whole path is kept.
   */
  push(e: Entry, parent = NO_PARENT): void {
    let name = e.path;
    if (parent !== NO_PARENT) {
      const at = this.pathLengthOf(parent);
      if (e.path.length > at + 1 && e.path[at] === 0x2f) name = e.path.subarray(at + 1);
      else throw new Error(`internal: ${e.path.toString('latin1')} is not named in entry ${parent}`);
    }
    const i = this.length++;
    const slot = i & SLOT;
    if (slot === 0) this.chunks.push(new Chunk(this.keepsIdentity));
    const c = this.chunks[i >>> CHUNK_BITS];
    c.kind[slot] = KIND_CODE.get(e.kind)!;
    c.mode[slot] = e.mode;
    c.uid[slot] = e.uid;
    c.gid[slot] = e.gid;
    c.size[slot] = e.size;
    this.totalSize += e.size;
    c.mtimeSec[slot] = e.mtimeSec;
    c.mtimeNsec[slot] = e.mtimeNsec;
    if (c.identity) {
      c.identity.ctimeSec[slot] = e.ctimeSec;
      c.identity.ctimeNsec[slot] = e.ctimeNsec;
      c.identity.ino[slot] = e.ino;
    }
    const { slab, start } = this.reserve(name.length);
    name.copy(slab, start);
    c.parent[slot] = parent;
    c.nameSlab[slot] = this.slabs.length - 1;
    c.nameStart[slot] = start;
    c.pathLength[slot] = e.path.length;
    if (
      e.linkGroup !== undefined ||
      e.linkTarget !== undefined ||
      e.devMajor !== undefined ||
      e.xattrs !== undefined ||
      e.content !== undefined
    ) {
      const extra: Extra = {};
      if (e.linkGroup !== undefined) extra.linkGroup = e.linkGroup;
      if (e.linkTarget !== undefined) extra.linkTarget = e.linkTarget;
      if (e.devMajor !== undefined) [extra.devMajor, extra.devMinor] = [e.devMajor, e.devMinor];
      if (e.xattrs !== undefined) extra.xattrs = e.xattrs;
      if (e.content !== undefined) extra.content = e.content;
      this.extras.set(i, extra);
    }
  }

  /** A fresh `Entry` for index `i` (changing it does not change the table: see `replaceContent`). */
  get(i: number): Entry {
    const c = this.chunks[i >>> CHUNK_BITS];
    const slot = i & SLOT;
    const e: Entry = {
      path: this.path(i),
      kind: KINDS[c.kind[slot]],
      mode: c.mode[slot],
      uid: c.uid[slot],
      gid: c.gid[slot],
      size: c.size[slot],
      mtimeSec: c.mtimeSec[slot],
      mtimeNsec: c.mtimeNsec[slot],
      ctimeSec: c.identity ? c.identity.ctimeSec[slot] : 0,
      ctimeNsec: c.identity ? c.identity.ctimeNsec[slot] : 0,
      ino: c.identity ? c.identity.ino[slot] : 0,
    };
    const extra = this.extras.get(i);
    return extra ? Object.assign(e, extra) : e;
  }

  /** Entry `i`'s path: a view into a slab for a whole path, else a new Buffer. */
  path(i: number): Buffer {
    const parent = this.chunks[i >>> CHUNK_BITS].parent[i & SLOT];
    const name = this.name(i);
    return parent === NO_PARENT ? name : joinPath(this.dirPath(parent), name);
  }

  /**
   * The bytes the path ends with, without a copy: the entry's own name, or its whole path when it
   * was pushed without a parent.
   */
  name(i: number): Buffer {
    const c = this.chunks[i >>> CHUNK_BITS];
    const slot = i & SLOT;
    const start = c.nameStart[slot];
    const parent = c.parent[slot];
    const length = c.pathLength[slot] - (parent === NO_PARENT ? 0 : this.pathLengthOf(parent) + 1);
    return this.slabs[c.nameSlab[slot]].subarray(start, start + length);
  }

  /** The path of the directory entry `i` is in (empty at the top): from the chain, mostly no copy. */
  dirOf(i: number): Buffer {
    const parent = this.chunks[i >>> CHUNK_BITS].parent[i & SLOT];
    return parent === NO_PARENT ? parentOf(this.name(i)) : this.dirPath(parent);
  }

  mtimeSec(i: number): number {
    return this.chunks[i >>> CHUNK_BITS].mtimeSec[i & SLOT];
  }

  mtimeNsec(i: number): number {
    return this.chunks[i >>> CHUNK_BITS].mtimeNsec[i & SLOT];
  }

  kind(i: number): Kind {
    return KINDS[this.chunks[i >>> CHUNK_BITS].kind[i & SLOT]];
  }

  size(i: number): number {
    return this.chunks[i >>> CHUNK_BITS].size[i & SLOT];
  }

  linkGroup(i: number): string | undefined {
    return this.extras.get(i)?.linkGroup;
  }

  /** Sum of file sizes (content bytes) of all entries, or of those at `indices`. */
  contentBytes(indices?: Iterable<number>): number {
    if (!indices) return this.totalSize;
    let n = 0;
    for (const i of indices) n += this.size(i);
    return n;
  }

  /**
   * Entry `i` is written with `content` instead of the file's bytes (a scrubbed git config): its size
   * becomes theirs, and it is no longer the same file as any hardlink to it.
   */
  replaceContent(i: number, content: Buffer): void {
    this.totalSize += content.length - this.size(i);
    this.chunks[i >>> CHUNK_BITS].size[i & SLOT] = content.length;
    const extra = { ...this.extras.get(i), content };
    delete extra.linkGroup;
    this.extras.set(i, extra);
  }

  /** A copy without the entries at `drop`, none of which may be the parent of an entry that stays. */
  without(drop: ReadonlySet<number>): EntryTable {
    const out = new EntryTable(this.keepsIdentity);
    const newIndex = new Int32Array(this.length);
    for (let i = 0; i < this.length; i++) {
      newIndex[i] = out.length;
      if (drop.has(i)) continue;
      const parent = this.chunks[i >>> CHUNK_BITS].parent[i & SLOT];
      if (parent !== NO_PARENT && drop.has(parent)) throw new Error('internal: a parent left out alone');
      const e = this.get(i);
      // Into the copy's own slabs: a view into this table's would keep all of them alive.
      if (e.linkTarget) e.linkTarget = out.keep(e.linkTarget);
      out.push(e, parent === NO_PARENT ? NO_PARENT : newIndex[parent]);
    }
    return out;
  }

  setXattrs(i: number, xattrs: Xattrs): void {
    this.extras.set(i, { ...this.extras.get(i), xattrs });
  }

  *[Symbol.iterator](): Iterator<Entry> {
    for (let i = 0; i < this.length; i++) yield this.get(i);
  }

  private pathLengthOf(i: number): number {
    return this.chunks[i >>> CHUNK_BITS].pathLength[i & SLOT];
  }

  /**
   * A directory's path, from the chain of those last built: reading entries in walk order, the
   * parent is nearly always there, so each directory's path is built once per visit, not per entry.
   */
  private dirPath(d: number): Buffer {
    const indices = this.dirIndices;
    const top = indices.length - 1;
    if (top >= 0 && indices[top] === d) return this.dirPaths[top];
    for (let k = top - 1; k >= 0; k--) {
      if (indices[k] !== d) continue;
      // Deeper ones were left behind (walk order: their subtrees are done).
      indices.length = this.dirPaths.length = k + 1;
      return this.dirPaths[k];
    }
    const path = this.path(d); // leaves d's parent, if any, on top of the chain
    const parent = this.chunks[d >>> CHUNK_BITS].parent[d & SLOT];
    const keep = parent === NO_PARENT ? 0 : indices.lastIndexOf(parent) + 1;
    indices.length = this.dirPaths.length = keep;
    indices.push(d);
    this.dirPaths.push(path);
    return path;
  }

  private reserve(length: number): { slab: Buffer; start: number } {
    if (this.slabUsed + length > SLAB) {
      // Slabs own their memory (allocUnsafeSlow), so a path's byteOffset is its offset in the slab.
      this.slabs.push(Buffer.allocUnsafeSlow(Math.max(SLAB, length)));
      this.slabUsed = 0;
    }
    const start = this.slabUsed;
    this.slabUsed += length;
    return { slab: this.slabs[this.slabs.length - 1], start };
  }
}
