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
  if (name.includes(0)) throw bad('it holds a NUL byte');
  let start = 0;
  for (let i = 0; i <= name.length; i++) {
    if (i < name.length && name[i] !== 0x2f) continue;
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
  checkArchiveName(h.name);
  if (h.type === 'hardlink') checkArchiveName(h.linkName ?? EMPTY, 'hardlink target');
  const name = h.type === 'dir' ? withTrailingSlash(h.name) : h.name;
  const pax: Array<[string, Buffer]> = [];

  const split = splitUstarName(name);
  if (!split) pax.push(['path', name]);
  const link = h.linkName ?? EMPTY;
  if (link.length > 100) pax.push(['linkpath', link]);
  if (h.uid > MAX_OCTAL_8) pax.push(['uid', ascii(String(h.uid))]);
  if (h.gid > MAX_OCTAL_8) pax.push(['gid', ascii(String(h.gid))]);
  if (h.size > MAX_OCTAL_12) pax.push(['size', ascii(String(h.size))]);
  if (h.mtimeNsec !== 0 || h.mtimeSec < 0 || h.mtimeSec > MAX_OCTAL_12) {
    pax.push(['mtime', ascii(formatPaxTime(h.mtimeSec, h.mtimeNsec))]);
  }
  // Sorted by name so the record order never depends on the order the filesystem listed them.
  const xattrs = [...(h.xattrs ?? [])].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  for (const [key, value] of xattrs) {
    // Readers split a record at its first `=`: such a name would silently become another.
    if (key.includes('='))
      throw new Error(`refusing to write the xattr name ${JSON.stringify(key)}: it holds "="`);
    pax.push([`SCHILY.xattr.${key}`, value]);
  }

  const ustar = ustarBlock({
    name: split?.name ?? truncateName(name),
    prefix: split?.prefix ?? EMPTY,
    mode: h.mode & 0o7777,
    uid: h.uid,
    gid: h.gid,
    size: h.type === 'file' ? h.size : 0,
    mtime: Math.min(Math.max(h.mtimeSec, 0), MAX_OCTAL_12),
    typeflag: TYPEFLAG[h.type],
    linkName: link.length > 100 ? link.subarray(0, 100) : link,
    devMajor: h.devMajor ?? 0,
    devMinor: h.devMinor ?? 0,
  });
  if (pax.length === 0) return ustar;

  const body = encodePaxRecords(pax);
  const paxHeader = ustarBlock({
    // Like GNU tar and Go: a stable, descriptive name for the extended header itself.
    name: truncateName(Buffer.concat([ascii('PaxHeaders/'), split?.name ?? truncateName(name)])),
    prefix: EMPTY,
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: body.length,
    mtime: 0,
    typeflag: PAX_TYPEFLAG,
    linkName: EMPTY,
    devMajor: 0,
    devMinor: 0,
  });
  return Buffer.concat([paxHeader, body, zeroPad(body.length), ustar]);
}

/** Zero bytes that pad `size` bytes of data up to a whole block. */
export function zeroPad(size: number): Buffer {
  const rest = size % BLOCK;
  return rest === 0 ? EMPTY : Buffer.alloc(BLOCK - rest);
}

/** The end-of-archive marker: two zero blocks. */
export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);

/**
 * `"%d %s=%s\n"` records whose length prefix counts itself (pax, "extended header records"). Keys are
 * latin1 strings of their bytes: an xattr name is written byte for byte, UTF-8 or not.
 */
export function encodePaxRecords(records: ReadonlyArray<readonly [string, Buffer]>): Buffer {
  const parts: Buffer[] = [];
  for (const [key, value] of records) {
    const rest = 1 + key.length + 1 + value.length + 1; // " key=value\n"
    // The length prefix counts its own digits: grow it until it is a fixed point.
    let len = rest + 1;
    while (rest + String(len).length !== len) len = rest + String(len).length;
    parts.push(Buffer.from(`${len} ${key}=`, 'latin1'), value, NEWLINE);
  }
  return Buffer.concat(parts);
}

function formatPaxTime(sec: number, nsec: number): string {
  if (nsec === 0) return String(sec);
  // A negative time with a fraction: -1.25 means 1.25 s before the epoch, so (sec, nsec) = (-2, 750e6).
  const negative = sec < 0;
  const whole = negative ? -(sec + 1) : sec;
  const frac = negative ? 1e9 - nsec : nsec;
  const digits = String(frac).padStart(9, '0').replace(/0+$/, '');
  return `${negative ? '-' : ''}${whole}.${digits}`;
}

interface UstarFields {
  name: Buffer;
  prefix: Buffer;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: number;
  linkName: Buffer;
  devMajor: number;
  devMinor: number;
}

function ustarBlock(f: UstarFields): Buffer {
  const b = Buffer.alloc(BLOCK);
  f.name.copy(b, 0, 0, 100);
  writeNumeric(b, 100, 8, f.mode);
  writeNumeric(b, 108, 8, Math.min(f.uid, MAX_OCTAL_8));
  writeNumeric(b, 116, 8, Math.min(f.gid, MAX_OCTAL_8));
  writeNumeric(b, 124, 12, f.size);
  writeNumeric(b, 136, 12, f.mtime);
  b.fill(0x20, 148, 156); // checksum is computed with its own field as spaces
  b[156] = f.typeflag;
  f.linkName.copy(b, 157, 0, 100);
  b.write('ustar\x0000', 257, 'latin1');
  // uname/gname stay empty: numeric ids are the truth in an image, names would depend on this host.
  writeNumeric(b, 329, 8, f.devMajor);
  writeNumeric(b, 337, 8, f.devMinor);
  f.prefix.copy(b, 345, 0, 155);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[i];
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return b;
}

/** Octal, zero padded, NUL terminated; base-256 (GNU) when it does not fit, as readers expect. */
function writeNumeric(b: Buffer, offset: number, width: number, value: number): void {
  const octal = value.toString(8);
  if (value >= 0 && octal.length <= width - 1) {
    b.write(octal.padStart(width - 1, '0') + '\0', offset, 'latin1');
    return;
  }
  let v = BigInt(value);
  for (let i = offset + width - 1; i > offset; i--) {
    b[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  b[offset] = 0x80;
}

/** Splits a name into ustar prefix (≤155) and name (≤100) at a `/`, or null when it cannot fit. */
function splitUstarName(name: Buffer): { prefix: Buffer; name: Buffer } | null {
  if (name.length <= 100) return { prefix: EMPTY, name };
  if (name.length > 256) return null;
  // The name part must be non-empty: the last `/` that leaves ≤100 bytes after it and ≤155 before it.
  for (let i = Math.min(155, name.length - 2); i >= name.length - 101 && i > 0; i--) {
    if (name[i] === 0x2f) return { prefix: name.subarray(0, i), name: name.subarray(i + 1) };
  }
  return null;
}

function truncateName(name: Buffer): Buffer {
  return name.length > 100 ? name.subarray(0, 100) : name;
}

function withTrailingSlash(name: Buffer): Buffer {
  return name[name.length - 1] === 0x2f ? name : Buffer.concat([name, SLASH]);
}

function ascii(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}

const EMPTY = Buffer.alloc(0);
const SLASH = Buffer.from('/');
const NEWLINE = Buffer.from('\n');
