/**
 * Byte-exact tar headers (POSIX ustar + PAX extended headers, pax interchange format, IEEE 1003.1-2001).
 *
 * We write headers ourselves instead of through tar-stream because its PAX records are built from JS
 * strings (UTF-8 re-encoded) and its ustar mtime has whole seconds: a non-UTF-8 name, a binary
 * `security.capability` value or a nanosecond mtime would not survive. Every field is set explicitly so
 * the same entry always gives the same bytes.
 */

export const BLOCK = 512;

export type TarType = 'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo';

const TYPEFLAG: Record<TarType, number> = {
  file: 0x30, // '0'
  hardlink: 0x31, // '1'
  symlink: 0x32, // '2'
  char: 0x33, // '3'
  block: 0x34, // '4'
  dir: 0x35, // '5'
  fifo: 0x36, // '6'
};
const PAX_TYPEFLAG = 0x78; // 'x'

export interface TarHeader {
  /** Name inside the archive: relative, no leading `/`, directories end without `/` (we add it). */
  name: Buffer;
  type: TarType;
  /** Permission bits including suid/sgid/sticky (12 bits). */
  mode: number;
  uid: number;
  gid: number;
  /** Bytes of data that follow the header (regular files only). */
  size: number;
  mtimeSec: number;
  mtimeNsec: number;
  /** Symlink target or hardlink source, verbatim bytes. */
  linkName?: Buffer;
  devMajor?: number;
  devMinor?: number;
  /**
   * Extended attributes, written as `SCHILY.xattr.<name>` records with their raw value bytes; a name is
   * a latin1 string of its bytes (see Xattrs) and must not hold `=` (the walk leaves those out).
   */
  xattrs?: ReadonlyArray<readonly [string, Buffer]>;
}

const MAX_OCTAL_8 = 0o7777777; // 8-byte numeric field: 7 octal digits + NUL
const MAX_OCTAL_12 = 0o77777777777; // 12-byte field: 11 octal digits + NUL

/**
 * Refuses a name that could land outside the root when unpacked: absolute, with a `..` (or `.` or
 * empty) component, or holding a NUL. A walk never makes one; this guards every path into a layer,
 * hardlink targets included (they name another entry of the archive; symlink targets are only text).
 */
export function checkArchiveName(name: Buffer, what = 'name'): void {
  const bad = (why: string) =>
    new Error(`refusing to write the tar ${what} ${JSON.stringify(name.toString('latin1'))}: ${why}`);
  if (name.length === 0) throw bad('it is empty');
  if (name[0] === 0x2f) throw bad('it is absolute');
  let start = 0;
  for (let i = 0; i <= name.length; i++) {
    if (i < name.length && name[i] !== 0x2f) {
      if (name[i] === 0) throw bad('it holds a NUL byte');
      continue;
    }
    const len = i - start;
    if (len === 0 && i === name.length && i > 1) break; // a directory's trailing slash
    if (len === 0) throw bad('it has an empty component');
    if (name[start] === 0x2e && (len === 1 || (len === 2 && name[start + 1] === 0x2e)))
      throw bad('it has a "." or ".." component');
    start = i + 1;
  }
}

/** Encodes one entry's header blocks: an optional PAX header (with its data) and the ustar header. */
export function encodeHeader(h: TarHeader): Buffer {
  for (;;) {
    const end = encodeHeaderInto(h, scratch, 0);
    if (end >= 0) return Buffer.from(scratch.subarray(0, end));
    scratch = Buffer.allocUnsafe(scratch.length * 2);
  }
}

let scratch = Buffer.allocUnsafe(64 * 1024);

/** A PAX record's value: bytes, or ASCII text. */
type PaxValue = Buffer | string;

/**
 * Writes `encodeHeader(h)` into `out` at `at`, returning the offset just past it, or -1 when it does
 * not fit (what was written there is then meaningless). The layer writer encodes straight into its
 * output batch: no buffer is allocated per entry.
 */
export function encodeHeaderInto(h: TarHeader, out: Buffer, at: number): number {
  checkArchiveName(h.name);
  if (h.type === 'hardlink') checkArchiveName(h.linkName ?? EMPTY, 'hardlink target');
  const name = h.type === 'dir' ? withTrailingSlash(h.name) : h.name;
  const pax: Array<[string, PaxValue]> = [];

  const cut = ustarCut(name);
  if (cut === NO_FIT) pax.push(['path', name]);
  const link = h.linkName ?? EMPTY;
  if (link.length > 100) pax.push(['linkpath', link]);
  if (h.uid > MAX_OCTAL_8) pax.push(['uid', String(h.uid)]);
  if (h.gid > MAX_OCTAL_8) pax.push(['gid', String(h.gid)]);
  if (h.size > MAX_OCTAL_12) pax.push(['size', String(h.size)]);
  if (h.mtimeNsec !== 0 || h.mtimeSec < 0 || h.mtimeSec > MAX_OCTAL_12) {
    pax.push(['mtime', formatPaxTime(h.mtimeSec, h.mtimeNsec)]);
  }
  if (h.xattrs?.length) {
    // Sorted by name so the record order never depends on the order the filesystem listed them.
    const xattrs = [...h.xattrs].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    for (const [key, value] of xattrs) {
      // Readers split a record at its first `=`: such a name would silently become another.
      if (key.includes('='))
        throw new Error(`refusing to write the xattr name ${JSON.stringify(key)}: it holds "="`);
      pax.push([`SCHILY.xattr.${key}`, value]);
    }
  }
  // The ustar name and prefix: split at a `/` when the name fits that way, else its first 100 bytes.
  let prefixEnd = 0;
  let nameStart = 0;
  let nameEnd = name.length;
  if (cut === NO_FIT) nameEnd = Math.min(name.length, 100);
  else if (cut !== NO_PREFIX) {
    prefixEnd = cut;
    nameStart = cut + 1;
  }

  let bodyLength = 0;
  for (let r = 0; r < pax.length; r++) bodyLength += paxRecordLength(pax[r][0], pax[r][1].length);
  const total = (pax.length ? BLOCK + bodyLength + padLength(bodyLength) : 0) + BLOCK;
  if (at + total > out.length) return -1;

  if (pax.length) {
    // Like GNU tar and Go: a stable, descriptive name for the extended header itself.
    out.set(ZERO_BLOCK, at);
    const paxNameEnd = Math.min(nameEnd, nameStart + 100 - PAX_NAME_PREFIX.length);
    const nameSum =
      put(out, at, PAX_NAME_PREFIX, 0, PAX_NAME_PREFIX.length) +
      put(out, at + PAX_NAME_PREFIX.length, name, nameStart, paxNameEnd);
    finishUstar(out, at, nameSum, 0o644, 0, 0, bodyLength, 0, PAX_TYPEFLAG, EMPTY, 0, 0);
    let p = at + BLOCK;
    for (let r = 0; r < pax.length; r++) p = writePaxRecord(out, p, pax[r][0], pax[r][1]);
    const padEnd = p + padLength(bodyLength);
    out.fill(0, p, padEnd);
    at = padEnd;
  }
  out.set(ZERO_BLOCK, at);
  const nameSum = put(out, at, name, nameStart, nameEnd) + put(out, at + 345, name, 0, prefixEnd);
  finishUstar(
    out,
    at,
    nameSum,
    h.mode & 0o7777,
    h.uid,
    h.gid,
    h.type === 'file' ? h.size : 0,
    Math.min(Math.max(h.mtimeSec, 0), MAX_OCTAL_12),
    TYPEFLAG[h.type],
    link,
    h.devMajor ?? 0,
    h.devMinor ?? 0,
  );
  return at + BLOCK;
}

/**
 * Copies `src[start, end)` to `out` at `at` and returns the sum of its bytes, for the checksum: names
 * are short, and one loop costs less than a native copy and a pass over the block to sum it.
 */
function put(out: Buffer, at: number, src: Buffer, start: number, end: number): number {
  let sum = 0;
  for (let i = start; i < end; i++) {
    const byte = src[i];
    out[at++] = byte;
    sum += byte;
  }
  return sum;
}

const ZERO_BLOCK = new Uint8Array(BLOCK);

/** Zero bytes that pad `size` bytes of data up to a whole block. */
export function zeroPad(size: number): Buffer {
  const rest = size % BLOCK;
  return rest === 0 ? EMPTY : Buffer.alloc(BLOCK - rest);
}

/** How many zero bytes pad `size` bytes of data up to a whole block. */
export function padLength(size: number): number {
  const rest = size % BLOCK;
  return rest === 0 ? 0 : BLOCK - rest;
}

/** The end-of-archive marker: two zero blocks. */
export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);

/**
 * `"%d %s=%s\n"` records whose length prefix counts itself (pax, "extended header records"). Keys are
 * latin1 strings of their bytes: an xattr name is written byte for byte, UTF-8 or not.
 */
export function encodePaxRecords(records: ReadonlyArray<readonly [string, Buffer]>): Buffer {
  let length = 0;
  for (const [key, value] of records) length += paxRecordLength(key, value.length);
  const out = Buffer.allocUnsafe(length);
  let p = 0;
  for (const [key, value] of records) p = writePaxRecord(out, p, key, value);
  return out;
}

/** The length of `"%d key=value\n"`: the length prefix counts its own digits. */
function paxRecordLength(key: string, valueLength: number): number {
  const rest = 1 + key.length + 1 + valueLength + 1; // " key=value\n"
  // Grow it until it is a fixed point.
  let len = rest + 1;
  while (rest + String(len).length !== len) len = rest + String(len).length;
  return len;
}

function writePaxRecord(out: Buffer, at: number, key: string, value: PaxValue): number {
  at += out.write(`${paxRecordLength(key, value.length)} ${key}=`, at, 'latin1');
  at += typeof value === 'string' ? out.write(value, at, 'latin1') : value.copy(out, at);
  out[at] = 0x0a; // '\n'
  return at + 1;
}

function formatPaxTime(sec: number, nsec: number): string {
  if (nsec === 0) return String(sec);
  // A negative time with a fraction: -1.25 means 1.25 s before the epoch, so (sec, nsec) = (-2, 750e6).
  const negative = sec < 0;
  const whole = negative ? -(sec + 1) : sec;
  let frac = negative ? 1e9 - nsec : nsec;
  let width = 9; // digits of the fraction, without its trailing zeros
  while (frac % 10 === 0) {
    frac /= 10;
    width--;
  }
  return `${negative ? '-' : ''}${whole}.${String(frac).padStart(width, '0')}`;
}

/**
 * Fills the numeric fields, the type, the link name, the magic and the checksum of the ustar block at
 * `at`, whose bytes are zero but for the name and prefix already written there (their bytes summing
 * to `nameSum`).
 */
function finishUstar(
  b: Buffer,
  at: number,
  nameSum: number,
  mode: number,
  uid: number,
  gid: number,
  size: number,
  mtime: number,
  typeflag: number,
  linkName: Buffer,
  devMajor: number,
  devMinor: number,
): void {
  const sum =
    nameSum +
    writeNumeric(b, at + 100, 8, mode) +
    writeNumeric(b, at + 108, 8, Math.min(uid, MAX_OCTAL_8)) +
    writeNumeric(b, at + 116, 8, Math.min(gid, MAX_OCTAL_8)) +
    writeNumeric(b, at + 124, 12, size) +
    writeNumeric(b, at + 136, 12, mtime) +
    // The checksum is computed with its own field as spaces.
    8 * 0x20 +
    typeflag +
    put(b, at + 157, linkName, 0, Math.min(linkName.length, 100)) +
    put(b, at + 257, USTAR_MAGIC, 0, USTAR_MAGIC.length) +
    // uname/gname stay empty: numeric ids are the truth in an image, names would depend on this host.
    writeNumeric(b, at + 329, 8, devMajor) +
    writeNumeric(b, at + 337, 8, devMinor);
  b[at + 156] = typeflag;
  writeOctal(b, at + 148, 7, sum); // six octal digits, a NUL
  b[at + 155] = 0x20; // and a space
}

/**
 * Octal, zero padded, NUL terminated; base-256 (GNU) when it does not fit, as readers expect. Returns
 * the sum of the bytes written.
 */
function writeNumeric(b: Buffer, offset: number, width: number, value: number): number {
  if (value >= 0 && value <= (width === 8 ? MAX_OCTAL_8 : MAX_OCTAL_12))
    return writeOctal(b, offset, width, value);
  if (width !== 8 && width !== 12) throw new Error(`internal: a numeric field of ${width} bytes`);
  let v = BigInt(value);
  let sum = 0x80;
  for (let i = offset + width - 1; i > offset; i--) {
    b[i] = Number(v & 0xffn);
    sum += b[i];
    v >>= 8n;
  }
  b[offset] = 0x80;
  return sum;
}

/** `width - 1` octal digits of a value known to fit, then a NUL; returns the sum of those bytes. */
function writeOctal(b: Buffer, offset: number, width: number, value: number): number {
  let sum = 0;
  b[offset + width - 1] = 0;
  let i = offset + width - 2;
  for (; value >= 0x80000000; i--) {
    const digit = 0x30 + (value % 8);
    b[i] = digit;
    sum += digit;
    value = Math.floor(value / 8);
  }
  // Below 2^31 (nearly always): integer operations.
  for (; i >= offset; i--) {
    const digit = 0x30 + (value & 7);
    b[i] = digit;
    sum += digit;
    value >>>= 3;
  }
  return sum;
}

/** ustarCut: the name fits the name field alone. */
const NO_PREFIX = -1;
/** ustarCut: the name fits no ustar prefix and name split (it goes in a PAX `path` record). */
const NO_FIT = -2;

/**
 * Where a name splits into ustar prefix (≤155) and name (≤100): the index of that `/`, NO_PREFIX when
 * it fits the name field alone, NO_FIT when it cannot fit.
 */
function ustarCut(name: Buffer): number {
  if (name.length <= 100) return NO_PREFIX;
  if (name.length > 256) return NO_FIT;
  // The name part must be non-empty: the last `/` that leaves ≤100 bytes after it and ≤155 before it.
  for (let i = Math.min(155, name.length - 2); i >= name.length - 101 && i > 0; i--) {
    if (name[i] === 0x2f) return i;
  }
  return NO_FIT;
}

function withTrailingSlash(name: Buffer): Buffer {
  return name[name.length - 1] === 0x2f ? name : Buffer.concat([name, SLASH]);
}

const EMPTY = Buffer.alloc(0);
const SLASH = Buffer.from('/');
const PAX_NAME_PREFIX = Buffer.from('PaxHeaders/');
const USTAR_MAGIC = Buffer.from('ustar\x0000', 'latin1');
