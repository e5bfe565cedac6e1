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
  /** Bytes actually allocated on disk (st_blocks × 512): tells a sparse file. */
  allocated: number;
  mtimeSec: number;
  mtimeNsec: number;
  /** Status change time: moves on chmod, chown, setcap and writes, even when mtime is put back. */
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
/** Path bytes are packed into slabs this big. */
const SLAB = 1024 * 1024;

class Chunk {
  kind = new Uint8Array(CHUNK);
  mode = new Uint16Array(CHUNK);
  uid = new Uint32Array(CHUNK);
  gid = new Uint32Array(CHUNK);
  size = new Float64Array(CHUNK);
  allocated = new Float64Array(CHUNK);
  mtimeSec = new Float64Array(CHUNK);
  mtimeNsec = new Uint32Array(CHUNK);
  ctimeSec = new Float64Array(CHUNK);
  ctimeNsec = new Uint32Array(CHUNK);
  ino = new Float64Array(CHUNK);
  pathSlab = new Uint32Array(CHUNK);
  pathStart = new Uint32Array(CHUNK);
  pathLength = new Uint32Array(CHUNK);
}

/**
 * A list of entries stored by column: numbers in typed arrays, paths packed into shared slabs, the
 * rare fields (link targets, xattrs, devices, hardlink groups) in a side map. A root filesystem has
 * millions of entries; as objects each cost about 400 bytes (the object, a Buffer view for its path,
 * the path's bytes), here about 70 plus the path itself. `get` makes an ordinary `Entry` on demand.
 */
export class EntryTable implements Iterable<Entry> {
  length = 0;
  /** Sum of every entry's size, kept as entries come and change. */
  private totalSize = 0;
  private readonly chunks: Chunk[] = [];
  private readonly slabs: Buffer[] = [];
  private slabUsed = SLAB;
  private readonly extras = new Map<number, Extra>();

  static from(entries: Iterable<Entry>): EntryTable {
    const table = new EntryTable();
    for (const e of entries) table.push(e);
    return table;
  }

  /**
   * `parent/name` (or `name` at the top) in the table's path slabs. A path made here and then pushed
   * is not copied again.
   */
  join(parent: Buffer | null, name: Buffer | string): Buffer {
    // A string name is latin1: one char per byte (as readdir gives it with that encoding).
    const length = (parent ? parent.length + 1 : 0) + name.length;
    const { slab, start } = this.reserve(length);
    let at = start;
    if (parent) {
      parent.copy(slab, at);
      at += parent.length;
      slab[at++] = 0x2f; // '/'
    }
    if (typeof name === 'string') slab.write(name, at, 'latin1');
    else name.copy(slab, at);
    return slab.subarray(start, start + length);
  }

  push(e: Entry): void {
    const i = this.length++;
    const slot = i & SLOT;
    if (slot === 0) this.chunks.push(new Chunk());
    const c = this.chunks[i >>> CHUNK_BITS];
    c.kind[slot] = KIND_CODE.get(e.kind)!;
    c.mode[slot] = e.mode;
    c.uid[slot] = e.uid;
    c.gid[slot] = e.gid;
    c.size[slot] = e.size;
    this.totalSize += e.size;
    c.allocated[slot] = e.allocated;
    c.mtimeSec[slot] = e.mtimeSec;
    c.mtimeNsec[slot] = e.mtimeNsec;
    c.ctimeSec[slot] = e.ctimeSec;
    c.ctimeNsec[slot] = e.ctimeNsec;
    c.ino[slot] = e.ino;
    const { slab, start } = this.place(e.path);
    c.pathSlab[slot] = slab;
    c.pathStart[slot] = start;
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
      path: this.pathIn(c, slot),
      kind: KINDS[c.kind[slot]],
      mode: c.mode[slot],
      uid: c.uid[slot],
      gid: c.gid[slot],
      size: c.size[slot],
      allocated: c.allocated[slot],
      mtimeSec: c.mtimeSec[slot],
      mtimeNsec: c.mtimeNsec[slot],
      ctimeSec: c.ctimeSec[slot],
      ctimeNsec: c.ctimeNsec[slot],
      ino: c.ino[slot],
    };
    const extra = this.extras.get(i);
    return extra ? Object.assign(e, extra) : e;
  }

  path(i: number): Buffer {
    return this.pathIn(this.chunks[i >>> CHUNK_BITS], i & SLOT);
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

  setXattrs(i: number, xattrs: Xattrs): void {
    this.extras.set(i, { ...this.extras.get(i), xattrs });
  }

  *[Symbol.iterator](): Iterator<Entry> {
    for (let i = 0; i < this.length; i++) yield this.get(i);
  }

  private pathIn(c: Chunk, slot: number): Buffer {
    const start = c.pathStart[slot];
    return this.slabs[c.pathSlab[slot]].subarray(start, start + c.pathLength[slot]);
  }

  /** Where a path's bytes are: in place when `join` made them, else copied into a slab. */
  private place(p: Buffer): { slab: number; start: number } {
    // The walk joins a path, may join a link target after it (which can open a new slab), then pushes.
    for (let s = this.slabs.length - 1; s >= 0 && s >= this.slabs.length - 2; s--)
      if (p.buffer === this.slabs[s].buffer) return { slab: s, start: p.byteOffset };
    const { slab, start } = this.reserve(p.length);
    p.copy(slab, start);
    return { slab: this.slabs.length - 1, start };
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
