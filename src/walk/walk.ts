import { lstat, readdir, readlink } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import { show, type Logger } from '../log.js';
import { limiter } from '../util/limit.js';
import type { Filter } from './filter.js';
import { readXattrs, VanishedError, type Xattrs } from './xattrs.js';

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
}

export interface Exclusion {
  path: Buffer;
  reason: string;
}

export interface WalkResult {
  /** Depth-first, children sorted by raw name bytes: parents always before their contents. */
  entries: Entry[];
  excluded: Exclusion[];
  sockets: Buffer[];
}

export interface WalkOptions {
  root: string;
  filter: Filter;
  log: Logger;
  /** Filesystem calls in flight at once. @default 64 */
  concurrency?: number;
}

interface Node {
  entry: Entry;
  children?: Node[];
}

type Mode = 'normal' | 'includeOnly';

const SLASH = Buffer.from('/');
const WHITEOUT_PREFIX = Buffer.from('.wh.');

export class WhiteoutNameError extends Error {}

/**
 * Walks `root` with bounded parallel lstat calls, never following a symlink, reading names as bytes so
 * non-UTF-8 names survive. The filter decides what is left out; `include` globs can reach below an
 * excluded directory, in which case only the included paths and their parents are kept there.
 */
export async function walk(opts: WalkOptions): Promise<WalkResult> {
  const limit = limiter(opts.concurrency ?? 64);
  const rootBuf = Buffer.from(opts.root.replace(/\/+$/, '') || '/');
  const excluded: Exclusion[] = [];
  const sockets: Buffer[] = [];
  const { filter, log } = opts;

  const absolute = (rel: Buffer) =>
    rootBuf.length === 1 ? Buffer.concat([SLASH, rel]) : Buffer.concat([rootBuf, SLASH, rel]);

  async function visitDir(rel: Buffer | null, mode: Mode): Promise<Node[]> {
    let names: Buffer[];
    try {
      names = await limit(() => readdir(rel ? absolute(rel) : rootBuf, { encoding: 'buffer' }));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        // Removed, or replaced by a file, between its lstat and this listing.
        if (rel)
          log.warn(`${show(absolute(rel))} changed while it was walked; captured as an empty directory`);
        return [];
      }
      if (rel === null) throw err;
      log.warn(`cannot list ${absolute(rel).toString()}: ${code ?? err}; captured as an empty directory`);
      return [];
    }
    names.sort(Buffer.compare);
    const nodes = await Promise.all(
      names.map((name) => visitEntry(rel ? Buffer.concat([rel, SLASH, name]) : name, name, mode)),
    );
    return nodes.filter((n): n is Node => n !== null);
  }

  async function visitEntry(rel: Buffer, name: Buffer, mode: Mode): Promise<Node | null> {
    const key = '/' + rel.toString('latin1');
    const included = filter.included(key);
    const rule = included ? null : filter.classify(key);
    if (mode === 'includeOnly' && !included && !filter.leadsToInclude(key)) return null;

    const abs = absolute(rel);
    let st: BigIntStats;
    try {
      st = await limit(() => lstat(abs, { bigint: true }));
    } catch (err) {
      if (!isGone(err)) throw err;
      log.warn(`${show(abs)} vanished while it was walked; left out`);
      return null;
    }
    const isDir = st.isDirectory();
    let childMode: Mode | null = mode === 'includeOnly' && !included ? 'includeOnly' : 'normal';
    if (rule) {
      const reaches = isDir && filter.leadsToInclude(key);
      if (rule.action === 'drop' && !reaches) {
        excluded.push({ path: rel, reason: rule.reason });
        return null;
      }
      if (rule.action === 'empty' || rule.action === 'drop') {
        excluded.push({ path: rel, reason: rule.reason + (rule.action === 'empty' ? ' (kept empty)' : '') });
        childMode = reaches ? 'includeOnly' : null;
      }
    }
    if (st.isSocket()) {
      sockets.push(rel);
      return null;
    }
    if (name.subarray(0, WHITEOUT_PREFIX.length).equals(WHITEOUT_PREFIX)) {
      throw new WhiteoutNameError(
        `${show(abs)} is named like a whiteout (.wh.*): image tools would read it as a deletion; rename it or exclude it`,
      );
    }
    let entry: Entry;
    try {
      entry = await toEntry(rel, abs, st);
    } catch (err) {
      if (err instanceof VanishedError || isGone(err)) {
        log.warn(`${show(abs)} changed while it was walked; left out`);
        return null;
      }
      throw err;
    }
    if (isHugeSparse(entry)) {
      const holes = ((entry.size - entry.allocated) / 1024 ** 3).toFixed(1);
      log.warn(
        `${show(abs)} is a sparse file with ${holes} GiB of holes; left out (see README, "Sparse files")`,
      );
      excluded.push({ path: rel, reason: 'sparse file (holes over 1 GiB)' });
      return null;
    }
    const node: Node = { entry };
    if (isDir && childMode) node.children = await visitDir(rel, childMode);
    return node;
  }

  async function toEntry(rel: Buffer, abs: Buffer, st: BigIntStats): Promise<Entry> {
    const { sec, nsec } = splitNs(st.mtimeNs);
    const ctime = splitNs(st.ctimeNs);
    const entry: Entry = {
      path: rel,
      kind: kindOf(st),
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      size: st.isFile() ? Number(st.size) : 0,
      allocated: Number(st.blocks) * 512,
      mtimeSec: sec,
      mtimeNsec: nsec,
      ctimeSec: ctime.sec,
      ctimeNsec: ctime.nsec,
      ino: Number(st.ino),
    };
    if (st.isFile() && st.nlink > 1n) entry.linkGroup = `${st.dev}:${st.ino}`;
    if (st.isSymbolicLink()) entry.linkTarget = await limit(() => readlink(abs, { encoding: 'buffer' }));
    if (st.isCharacterDevice() || st.isBlockDevice()) {
      // glibc's gnu_dev_major/minor: the 64-bit dev_t splits major and minor across high and low bits.
      const rdev = st.rdev;
      entry.devMajor = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
      entry.devMinor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
    }
    const xattrs = readXattrs(abs, log);
    if (xattrs) entry.xattrs = xattrs;
    return entry;
  }

  const tree = await visitDir(null, 'normal');
  const entries: Entry[] = [];
  const flatten = (nodes: Node[]) => {
    for (const n of nodes) {
      entries.push(n.entry);
      if (n.children) flatten(n.children);
    }
  };
  flatten(tree);
  return { entries, excluded, sockets };
}

/**
 * Holes read back as zeros and a tar has no room for them (ustar has no sparse entries that every
 * extractor understands). Up to 1 GiB of holes are written as zeros, which compress to almost nothing;
 * beyond that (`lastlog` after `useradd` with a large uid reaches hundreds of GB) the file is left out.
 */
export const SPARSE_HOLE_LIMIT = 1024 ** 3;

export function isHugeSparse(e: Entry): boolean {
  return e.kind === 'file' && e.size - e.allocated > SPARSE_HOLE_LIMIT;
}

/** The entry vanished or was replaced by another kind between two calls: not an error. */
function isGone(err: unknown): boolean {
  return ['ENOENT', 'ENOTDIR', 'ELOOP', 'EINVAL'].includes((err as NodeJS.ErrnoException).code ?? '');
}

function kindOf(st: BigIntStats): Kind {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  throw new Error(`unexpected file type ${st.mode}`);
}

/** Splits nanoseconds since the epoch into whole seconds (floored) and the nanoseconds past them. */
export function splitNs(ns: bigint): { sec: number; nsec: number } {
  let sec = ns / 1_000_000_000n;
  let nsec = ns % 1_000_000_000n;
  if (nsec < 0n) {
    sec -= 1n;
    nsec += 1_000_000_000n;
  }
  return { sec: Number(sec), nsec: Number(nsec) };
}
