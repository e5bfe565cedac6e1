import { realpathSync } from 'node:fs';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { show, type Logger } from '../log.js';
import { joinPath } from '../util/paths.js';
import type { Filter } from './filter.js';
import { EntryTable, NO_PARENT, type Entry, type Kind } from './entries.js';
import { XattrReader } from './xattrs.js';
import { UserError } from '../failure.js';
import {
  readDirectory,
  scannerKind,
  typeOf,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFREG,
  S_IFSOCK,
  type Listing,
  type Stat,
} from './directory.js';

export interface Exclusion {
  path: Buffer;
  reason: string;
  /** Left out by a default the user may not expect (a credential): warned about by name. */
  warn?: boolean;
}

export interface WalkResult {
  /** Depth-first, children sorted by raw name bytes: parents always before their contents. */
  entries: EntryTable;
  excluded: Exclusion[];
  sockets: Buffer[];
  /**
   * What this process may not read: directories it could not list, and (when not root) files whose
   * mode denies it. Such a capture cannot be faithful; run as root.
   */
  unreadable: Buffer[];
  /** False when the walk left xattrs unread (`deferXattrs`): see readXattrsOf. */
  xattrsRead: boolean;
}

export interface WalkOptions {
  root: string;
  filter: Filter;
  log: Logger;
  /** Keep ctime and inode, which only a baseline compares (20 bytes an entry). */
  keepIdentity: boolean;
  /**
   * Leave every entry's xattrs unread: the caller reads those of the entries it keeps, with
   * `readXattrsOf` (a baseline comparison, where an entry as recorded needs none).
   */
  deferXattrs?: boolean;
  /** Bumped once per entry looked at, for progress lines. */
  counters?: { entries: number };
}

type Mode = 'normal' | 'includeOnly';

const WHITEOUT_PREFIX = '.wh.';

export class WhiteoutNameError extends UserError {}

/** Entries between two yields to the event loop (timers, progress lines) during the walk. */
const YIELD_EVERY = 4096;

/**
 * Walks `root` depth-first, never following a symlink, reading names as bytes so non-UTF-8 names
 * survive. The filter decides what is left out; `include` globs can reach below an excluded directory,
 * in which case only the included paths and their parents are kept there.
 *
 * The calls are synchronous, like find's: a metadata walk is bound by per-call overhead, and a
 * promise plus a thread-pool hop cost ten times the lstat itself (8.6 s against 0.35 s for find on
 * 79k entries). It yields to the event loop every few thousand entries so timers still run.
 */
export async function walk(opts: WalkOptions): Promise<WalkResult> {
  const entries = new EntryTable(opts.keepIdentity);
  const rootBuf = Buffer.from(opts.root.replace(/\/+$/, '') || '/');
  const excluded: Exclusion[] = [];
  const sockets: Buffer[] = [];
  const unreadable: Buffer[] = [];
  const mayRead = readPermission();
  const { filter, log } = opts;
  const xattrs = new XattrReader(log);
  const credentials = new CredentialInodes();

  // Each entry's absolute path is made once; its root-relative path is the tail of it.
  const relStart = rootBuf.length === 1 ? 1 : rootBuf.length + 1;

  /** A directory being walked: its listing, and the next of its entries to visit. */
  interface Frame {
    abs: Buffer;
    key: string;
    mode: Mode;
    index: number;
    listing: Listing;
    next: number;
  }
  const stack: Frame[] = [];

  /**
   * Lists a directory and puts it on the stack (or warns and leaves it empty). Names are latin1
   * strings, one char per byte: any byte sequence survives, sorting them compares bytes, and the
   * filter's key is a string concatenation, not a conversion per entry.
   */
  function openDir(abs: Buffer, key: string, mode: Mode, index: number): void {
    const isRoot = index === NO_PARENT;
    let listing: Listing;
    try {
      // The root may be given through a symlink (`--root /mnt/rootfs` linking elsewhere); nothing
      // below it is followed.
      listing = readDirectory(isRoot ? Buffer.from(realpathSync(abs)) : abs);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') {
        // Removed, or replaced by a file, between its lstat and this listing.
        if (!isRoot) log.warn(`${show(abs)} changed while it was walked; captured as an empty directory`);
        return;
      }
      if (isRoot) throw err;
      if (code === 'EACCES' || code === 'EPERM') unreadable.push(abs.subarray(relStart));
      // Not root: the caller stops (or runs again under sudo) over `unreadable`, which says it better.
      if (mayRead === READS_ALL)
        log.warn(`cannot list ${show(abs)}: ${code ?? err}; captured as an empty directory`);
      return;
    }
    stack.push({ abs, key: key === '/' ? '' : key, mode, index, listing, next: 0 });
  }

  /**
   * Adds entry `i` of the directory `dir`; a directory to walk next is opened onto the stack, so
   * parents come before their contents. Synchronous, and no closure or promise per entry: at a
   * million entries those were much of the garbage collector's work.
   */
  function visitEntry(dir: Frame, i: number): void {
    if (opts.counters) opts.counters.entries++;
    const name = dir.listing.names[i];
    const key = dir.key + '/' + name;
    const { mode } = dir;
    const included = filter.included(key);
    const rule = included ? null : filter.classify(key);
    if (mode === 'includeOnly' && !included && !filter.leadsToInclude(key)) return;

    const abs = joinPath(dir.abs, name);
    const rel = abs.subarray(relStart);
    // A long root: the host path reaches PATH_MAX before the image path is too long, and the writer
    // reads files by their host path.
    if (rel.length + 1 > MAX_IMAGE_PATH || abs.length >= HOST_PATH_MAX) {
      leaveOutLong(rel);
      return;
    }
    let st: Stat;
    try {
      st = dir.listing.stat(i);
    } catch (err) {
      if (!isGone(err)) throw err;
      log.warn(`${show(abs)} vanished while it was walked; left out`);
      return;
    }
    const isDir = typeOf(st) === S_IFDIR;
    let childMode: Mode | null = mode === 'includeOnly' && !included ? 'includeOnly' : 'normal';
    if (rule) {
      const reaches = isDir && filter.leadsToInclude(key);
      if (rule.action === 'drop' && rule.credential) credentials.add(abs, rel, st, rule.reason);
      if (rule.action === 'drop' && !reaches) {
        excluded.push({ path: rel, reason: rule.reason, ...(rule.warn ? { warn: true } : {}) });
        return;
      }
      if (rule.action === 'empty' || rule.action === 'drop') {
        excluded.push({ path: rel, reason: rule.reason + (rule.action === 'empty' ? ' (kept empty)' : '') });
        childMode = reaches ? 'includeOnly' : null;
      }
    }
    if (typeOf(st) === S_IFSOCK) {
      sockets.push(rel);
      return;
    }
    if (name.startsWith(WHITEOUT_PREFIX)) {
      throw new WhiteoutNameError(
        `${show(abs)} is named like a whiteout (.wh.*): image tools would read it as a deletion; rename it or exclude it`,
      );
    }
    const entry = entryOf(rel, st);
    if (entry.linkTarget) entry.linkTarget = entries.keep(entry.linkTarget);
    if (isHugeSparse(entry)) {
      const holes = (holesIn(entry) / 1024 ** 3).toFixed(1);
      log.warn(
        `${show(abs)} is a sparse file with ${holes} GiB of holes; left out (see README, "Sparse files")`,
      );
      excluded.push({ path: rel, reason: 'sparse file (holes over 1 GiB)' });
      return;
    }
    if (entry.kind === 'file' && !mayRead(entry)) unreadable.push(rel);
    entries.push(entry, dir.index);
    const index = entries.length - 1;
    if (!opts.deferXattrs) xattrs.add(index, abs);
    if (isDir && childMode) openDir(abs, key, childMode, index);
  }

  /** An entry whose path no extractor could create, left out with whatever is below it. */
  function leaveOutLong(rel: Buffer): void {
    log.warn(
      `left out /${showShortened(rel)} and anything below it: its path is ${rel.length + 1} bytes, longer than image tools can unpack (${MAX_IMAGE_PATH}; see README, "Limits")`,
    );
    excluded.push({ path: rel, reason: `path over ${MAX_IMAGE_PATH} bytes` });
  }

  log.debug(
    scannerKind() === 'native'
      ? 'walk: directories listed by the native scanner'
      : 'walk: directories listed from JavaScript (the native scanner cannot run here)',
  );
  openDir(rootBuf, '/', 'normal', NO_PARENT);
  let sinceYield = 0;
  while (stack.length) {
    const dir = stack[stack.length - 1];
    if (dir.next === dir.listing.names.length) stack.pop();
    else visitEntry(dir, dir.next++);
    if (++sinceYield >= YIELD_EVERY) {
      sinceYield = 0;
      await yieldToEventLoop();
    }
  }
  for (const [i, found] of await xattrs.finish()) entries.setXattrs(i, found);
  const kept = credentials.size ? withoutCredentialLinks(entries, credentials, excluded, log) : entries;
  return { entries: kept, excluded, sockets, unreadable, xattrsRead: !opts.deferXattrs };
}

/**
 * Reads the xattrs of the entries at `indices` (a walk made with `deferXattrs`) into the table: on the
 * xattr worker, as the walk would have.
 */
export async function readXattrsOf(
  root: string,
  entries: EntryTable,
  indices: Iterable<number>,
  log: Logger,
): Promise<void> {
  const rootBuf = Buffer.from(root.replace(/\/+$/, '') || '/');
  const reader = new XattrReader(log);
  for (const i of indices) reader.add(i, joinPath(rootBuf, entries.path(i)));
  for (const [i, found] of await reader.finish()) entries.setXattrs(i, found);
}

/**
 * The inodes of files left out as credentials that have other names (hardlinks): `dev:ino`, as an
 * entry's `linkGroup`, to the credential's path and what it holds. A credential directory
 * (`~/.config/gcloud`) gives the inodes of every file below it.
 */
class CredentialInodes extends Map<string, { path: Buffer; what: string }> {
  add(abs: Buffer, rel: Buffer, st: Stat, reason: string): this {
    const what = reason.replace(/^credentials: /, '');
    if (typeOf(st) !== S_IFDIR) {
      if (st.fileId) this.set(st.fileId, { path: Buffer.from(rel), what });
      return this;
    }
    let listing: Listing;
    try {
      listing = readDirectory(abs);
    } catch {
      return this; // unreadable: nothing of it is captured under another name either
    }
    for (const [i, name] of listing.names.entries()) {
      try {
        this.add(joinPath(abs, name), joinPath(rel, name), listing.stat(i), reason);
      } catch {
        // gone, or a path too long to look at: not captured elsewhere through this name
      }
    }
    return this;
  }
}

/**
 * A credential is left out under every name: the entries that are hardlinks of one (same device and
 * inode), wherever the walk met them, before or after the credential's own path, are taken out of the
 * table, each with a warning. Directories are never hardlinks, so every parent stays.
 */
function withoutCredentialLinks(
  entries: EntryTable,
  credentials: CredentialInodes,
  excluded: Exclusion[],
  log: Logger,
): EntryTable {
  const drop = new Set<number>();
  for (let i = 0; i < entries.length; i++) {
    const group = entries.linkGroup(i);
    const credential = group === undefined ? undefined : credentials.get(group);
    if (!credential) continue;
    const path = entries.path(i);
    drop.add(i);
    excluded.push({ path, reason: `same file as /${show(credential.path)} (credentials)` });
    log.warn(
      `left out /${show(path)}: the same file (a hardlink) as /${show(credential.path)}, left out as ${credential.what}; add /${show(credential.path)} to include to keep both`,
    );
  }
  return drop.size ? entries.without(drop) : entries;
}

/**
 * The longest path (with its leading `/`) an entry of the image may have. Extractors create entries
 * by their whole path (umoci, containerd and docker in Go; tar too, without openat), so one past the
 * kernel's PATH_MAX (4096 bytes with its NUL) fails every unpack, and the path is prefixed by the
 * directory the runtime unpacks into (containerd's and docker's are 80 to 100 bytes): 256 bytes are
 * left for it. Deeper entries are left out, with a warning, rather than make an image none can use.
 */
export const MAX_IMAGE_PATH = 4096 - 256;
/** PATH_MAX with its NUL: a longer host path cannot be opened by name. */
const HOST_PATH_MAX = 4096;

/** A path of any length for one log line: its start and end, with the middle left out. */
export function showShortened(p: Buffer, keep = 60): string {
  if (p.length <= 2 * keep + 3) return show(p);
  return `${show(p.subarray(0, keep))}…${show(p.subarray(p.length - keep))}`;
}

const READS_ALL = () => true;

/** Whether this process may read a file, by its mode bits (root reads everything). */
function readPermission(): (e: Entry) => boolean {
  const uid = process.geteuid?.() ?? 0;
  if (uid === 0) return READS_ALL;
  const gids = new Set([process.getegid?.(), ...(process.getgroups?.() ?? [])]);
  return (e) =>
    e.uid === uid
      ? (e.mode & 0o400) !== 0
      : gids.has(e.gid)
        ? (e.mode & 0o040) !== 0
        : (e.mode & 0o004) !== 0;
}

/**
 * Holes read back as zeros and a tar has no room for them (ustar has no sparse entries that every
 * extractor understands). Up to 1 GiB of holes are written as zeros, which compress to almost nothing;
 * beyond that (`lastlog` after `useradd` with a large uid reaches hundreds of GB) the file is left out.
 */
export const SPARSE_HOLE_LIMIT = 1024 ** 3;

export function isHugeSparse(e: Entry): boolean {
  return e.kind === 'file' && holesIn(e) > SPARSE_HOLE_LIMIT;
}

/** Bytes of a file that are not allocated on disk (none known: none). */
function holesIn(e: Entry): number {
  return e.size - (e.allocated ?? e.size);
}

/** The entry vanished or was replaced by another kind between two calls: not an error. */
function isGone(err: unknown): boolean {
  return ['ENOENT', 'ENOTDIR', 'ELOOP', 'EINVAL'].includes((err as NodeJS.ErrnoException).code ?? '');
}

/** An entry of the table from its path in the image and its lstat. */
export function entryOf(path: Buffer, st: Stat): Entry {
  const kind = kindOf(st);
  const entry: Entry = {
    path,
    kind,
    mode: st.mode & 0o7777,
    uid: st.uid,
    gid: st.gid,
    size: kind === 'file' ? st.size : 0,
    allocated: st.blocks * 512,
    mtimeSec: st.mtimeSec,
    mtimeNsec: st.mtimeNsec,
    ctimeSec: st.ctimeSec,
    ctimeNsec: st.ctimeNsec,
    ino: st.ino,
  };
  if (kind === 'file' && st.fileId) entry.linkGroup = st.fileId;
  if (st.linkTarget) entry.linkTarget = st.linkTarget;
  if (kind === 'char' || kind === 'block') {
    entry.devMajor = st.rdevMajor;
    entry.devMinor = st.rdevMinor;
  }
  return entry;
}

const KINDS = new Map<number, Kind>([
  [S_IFREG, 'file'],
  [S_IFDIR, 'dir'],
  [S_IFLNK, 'symlink'],
  [S_IFIFO, 'fifo'],
  [S_IFCHR, 'char'],
  [S_IFBLK, 'block'],
]);

function kindOf(st: Stat): Kind {
  const kind = KINDS.get(typeOf(st));
  if (!kind) throw new Error(`unexpected file type ${st.mode}`);
  return kind;
}
