import { constants as fsConstants, lstatSync, readdirSync, readlinkSync, type BigIntStats } from 'node:fs';
import { constants } from 'node:os';
import { loadNative } from '../util/native.js';
import { joinPath } from '../util/paths.js';

/** What the walk keeps of an entry's lstat. */
export interface Stat {
  /** st_mode: file type and permission bits. */
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  size: number;
  blocks: number;
  mtimeSec: number;
  mtimeNsec: number;
  ctimeSec: number;
  ctimeNsec: number;
  ino: number;
  /**
   * `dev:ino` in decimal, for what may have other names (not a directory, more than one link): the
   * same for every name of one file (a hardlink group).
   */
  fileId?: string;
  rdevMajor: number;
  rdevMinor: number;
  /** A symlink's target, read with the listing. */
  linkTarget?: Buffer;
}

/** A directory's names, sorted by their bytes, and each one's lstat. */
export interface Listing {
  /** Latin1 strings, one char per byte: any name survives, and sorting them compares bytes. */
  names: string[];
  /** Throws like lstatSync (`code` ENOENT for an entry gone since the listing). */
  stat(i: number): Stat;
}

interface Scanner {
  scan(path: Buffer): [Buffer, Float64Array, Buffer] | number;
}

// The fields of one entry in the scanner's array, in native/scan.c's order.
const [MODE, UID, GID, NLINK, SIZE, BLOCKS, MTIME_SEC, MTIME_NSEC, CTIME_SEC, CTIME_NSEC] = [
  0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
];
const [INO_HI, INO_LO, DEV_HI, DEV_LO, RDEV_MAJOR, RDEV_MINOR, ERRNO, NAME_AT, NAME_LEN] = [
  10, 11, 12, 13, 14, 15, 16, 17, 18,
];
const [TARGET_AT, TARGET_LEN, FIELDS] = [19, 20, 21];

let scanner: Scanner | null | undefined;

/**
 * The native scanner (native/scan.c, built for x64 and arm64 into dist/native/), unless it cannot load
 * here (another platform, a kernel without statx) or SNAPSHOT_ACTION_JS_WALK is set: then the walk
 * lists and lstats from JavaScript, with the same results, at 20-30 % more CPU on a no-change re-snapshot.
 */
function nativeScanner(): Scanner | null {
  if (scanner === undefined) {
    const loaded = process.env.SNAPSHOT_ACTION_JS_WALK
      ? null
      : loadNative<Scanner>(
          `scan.linux-${process.arch}.node`,
          `../../dist/native/scan.linux-${process.arch}.node`,
        );
    scanner = loaded && works(loaded.binding) ? loaded.binding : null;
  }
  return scanner;
}

/** statx is missing before Linux 4.11, and refused (EPERM) by the seccomp profile of Docker before 18.04. */
function works(native: Scanner): boolean {
  const result = native.scan(Buffer.from('/'));
  if (typeof result === 'number') return false;
  const f = result[1];
  for (let at = 0; at < f.length; at += FIELDS)
    if (f[at + ERRNO] === ENOSYS || f[at + ERRNO] === EPERM) return false;
  return true;
}
const { ENOSYS, EPERM } = constants.errno;

/** Whether directories are listed by the native scanner (for the log). */
export function scannerKind(): 'native' | 'javascript' {
  return nativeScanner() ? 'native' : 'javascript';
}

/**
 * Lists the directory at `abs` without following a symlink, throwing like readdirSync (ENOENT,
 * ENOTDIR, EACCES…) when it cannot be listed.
 */
export function readDirectory(abs: Buffer): Listing {
  const native = nativeScanner();
  if (!native) return readDirectoryInJs(abs);
  const result = native.scan(abs);
  if (typeof result === 'number') throw errnoError(result, 'scandir', abs);
  const [bytes, f, targets] = result;
  const names: string[] = [];
  for (let at = 0; at < f.length; at += FIELDS)
    names.push(bytes.toString('latin1', f[at + NAME_AT], f[at + NAME_AT] + f[at + NAME_LEN]));
  return {
    names,
    stat(i) {
      const at = i * FIELDS;
      if (f[at + ERRNO]) throw errnoError(f[at + ERRNO], 'lstat', joinPath(abs, names[i]));
      const inoHi = f[at + INO_HI];
      const inoLo = f[at + INO_LO];
      const stat: Stat = {
        mode: f[at + MODE],
        uid: f[at + UID],
        gid: f[at + GID],
        nlink: f[at + NLINK],
        size: f[at + SIZE],
        blocks: f[at + BLOCKS],
        mtimeSec: f[at + MTIME_SEC],
        mtimeNsec: f[at + MTIME_NSEC],
        ctimeSec: f[at + CTIME_SEC],
        ctimeNsec: f[at + CTIME_NSEC],
        ino: inoHi * 2 ** 32 + inoLo,
        rdevMajor: f[at + RDEV_MAJOR],
        rdevMinor: f[at + RDEV_MINOR],
      };
      if (hasOtherNames(stat)) stat.fileId = `${u64(f[at + DEV_HI], f[at + DEV_LO])}:${u64(inoHi, inoLo)}`;
      if (f[at + TARGET_LEN] >= 0)
        stat.linkTarget = targets.subarray(f[at + TARGET_AT], f[at + TARGET_AT] + f[at + TARGET_LEN]);
      return stat;
    },
  };
}

function hasOtherNames(st: Stat): boolean {
  return st.nlink > 1 && typeOf(st) !== fsConstants.S_IFDIR;
}

/** A 64-bit number given as two 32-bit halves, in decimal: exact beyond 2^53 too. */
function u64(hi: number, lo: number): string {
  return hi < 2 ** 21 ? String(hi * 2 ** 32 + lo) : ((BigInt(hi) << 32n) | BigInt(lo)).toString();
}

const ERRNO_NAMES = new Map(Object.entries(constants.errno).map(([name, n]) => [n, name]));

/** An error as Node's fs would throw it for `errno`. */
function errnoError(errno: number, syscall: string, path: Buffer): NodeJS.ErrnoException {
  const code = ERRNO_NAMES.get(errno) ?? `E${errno}`;
  const err: NodeJS.ErrnoException = new Error(`${code}: ${syscall} '${path.toString()}'`);
  Object.assign(err, { code, errno: -errno, syscall, path: path.toString() });
  return err;
}

/** The JavaScript listing: readdir, then one lstat by whole path per entry the walk asks about. */
export function readDirectoryInJs(abs: Buffer): Listing {
  const names = readdirSync(abs, { encoding: 'latin1' }).sort();
  return { names, stat: (i) => lstatOf(joinPath(abs, names[i])) };
}

/** The lstat of one path (and its target, for a symlink), throwing like lstatSync. */
export function lstatOf(abs: Buffer): Stat {
  const st: BigIntStats = lstatSync(abs, { bigint: true });
  const mtime = splitNs(st.mtimeNs);
  const ctime = splitNs(st.ctimeNs);
  const rdev = st.rdev;
  const stat: Stat = {
    mode: Number(st.mode),
    uid: Number(st.uid),
    gid: Number(st.gid),
    nlink: Number(st.nlink),
    size: Number(st.size),
    blocks: Number(st.blocks),
    mtimeSec: mtime.sec,
    mtimeNsec: mtime.nsec,
    ctimeSec: ctime.sec,
    ctimeNsec: ctime.nsec,
    ino: Number(st.ino),
    // glibc's gnu_dev_major/minor: the 64-bit dev_t splits major and minor across high and low bits.
    rdevMajor: Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn)),
    rdevMinor: Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn)),
    ...(st.isSymbolicLink() ? { linkTarget: readlinkSync(abs, { encoding: 'buffer' }) } : {}),
  };
  if (hasOtherNames(stat)) stat.fileId = `${st.dev}:${st.ino}`;
  return stat;
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

/** An entry's file type: one of fs.constants' S_IF* values. */
export const typeOf = (st: Stat): number => st.mode & fsConstants.S_IFMT;
export const { S_IFREG, S_IFDIR, S_IFLNK, S_IFIFO, S_IFCHR, S_IFBLK, S_IFSOCK } = fsConstants;
