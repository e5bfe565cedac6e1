import type { Duplex, Readable } from 'node:stream';
import zlib from 'node:zlib';
import { MediaType } from '../content/oci.js';

const BLOCK = 512;
const PAX = 0x78; // 'x': extended header for the next entry
const PAX_GLOBAL = 0x67; // 'g'
const GNU_LONGNAME = 0x4c; // 'L'

/**
 * Reads the names of a layer's entries, as `/`-less relative paths (`usr/bin/tool`, a directory
 * without its trailing slash, a whiteout as `.wh.` named), in archive order. Only the headers are
 * parsed; file data is decompressed (it must be, to find the next header) and skipped.
 */
export async function listLayer(
  blob: Readable,
  mediaType: string,
  onName: (name: Buffer) => void,
): Promise<void> {
  const tar = decompressed(blob, mediaType);
  let pending: Buffer = Buffer.alloc(0);
  let skip = 0;
  let header: Buffer | null = null; // a PAX or GNU long-name header whose data we are collecting
  let headerType = 0;
  let dataLeft = 0;
  let longName: Buffer | null = null;
  let zeroBlocks = 0;
  // Read to the end even past the end-of-archive blocks, so the caller can check the blob's digest.
  for await (const chunk of tar as AsyncIterable<Buffer>) {
    if (zeroBlocks === 2) continue;
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    let at = 0;
    for (;;) {
      if (skip) {
        const n = Math.min(skip, pending.length - at);
        skip -= n;
        at += n;
        if (skip) break;
      }
      if (header) {
        const n = Math.min(dataLeft, pending.length - at);
        header = Buffer.concat([header, pending.subarray(at, at + n)]);
        dataLeft -= n;
        at += n;
        if (dataLeft) break;
        skip = padding(header.length);
        if (headerType === PAX) longName = paxPath(header) ?? longName;
        else if (headerType === GNU_LONGNAME) longName = cString(header);
        header = null;
        continue;
      }
      if (pending.length - at < BLOCK) break;
      const block = pending.subarray(at, at + BLOCK);
      at += BLOCK;
      if (block.every((b) => b === 0)) {
        if (++zeroBlocks === 2) break;
        continue;
      }
      zeroBlocks = 0;
      const type = block[156];
      const size = octal(block.subarray(124, 136));
      if (type === PAX || type === PAX_GLOBAL || type === GNU_LONGNAME) {
        header = Buffer.alloc(0);
        headerType = type === PAX_GLOBAL ? 0 : type;
        dataLeft = size;
        continue;
      }
      const name = longName ?? ustarName(block);
      longName = null;
      const trimmed = trimName(name);
      if (trimmed.length) onName(trimmed); // not the root itself (`./`)
      // Only regular files (and contiguous ones) carry data in the archive.
      skip = type === 0x30 || type === 0 || type === 0x37 ? size + padding(size) : 0;
    }
    pending = pending.subarray(at);
  }
}

function decompressed(blob: Readable, mediaType: string): Readable {
  switch (mediaType) {
    case MediaType.layerTar:
      return blob;
    case MediaType.layerGzip:
      return piped(blob, zlib.createGunzip());
    case MediaType.layerZstd: {
      const create = (zlib as { createZstdDecompress?: () => Duplex }).createZstdDecompress;
      if (!create) throw new Error('reading a zstd layer needs Node.js 22.15 or newer');
      return piped(blob, create());
    }
    default:
      throw new Error(`cannot read a layer of media type ${mediaType}`);
  }
}

/** `from.pipe(to)`, with an error of `from` (a dropped connection) ending `to` too, not lost. */
export function piped<T extends Duplex>(from: Readable, to: T): T {
  from.once('error', (err) => to.destroy(err));
  return from.pipe(to);
}

function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

function octal(field: Buffer): number {
  // Base-256 (GNU) for sizes over 8 GiB: the high bit of the first byte set.
  if (field[0] & 0x80) {
    let n = field[0] & 0x7f;
    for (let i = 1; i < field.length; i++) n = n * 256 + field[i];
    return n;
  }
  const text = cString(field).toString('latin1').trim();
  return text ? parseInt(text, 8) : 0;
}

function cString(b: Buffer): Buffer {
  const nul = b.indexOf(0);
  return nul < 0 ? b : b.subarray(0, nul);
}

function ustarName(block: Buffer): Buffer {
  const name = cString(block.subarray(0, 100));
  const prefix = block.subarray(257, 263).toString('latin1').startsWith('ustar')
    ? cString(block.subarray(345, 500))
    : Buffer.alloc(0);
  return prefix.length ? Buffer.concat([prefix, Buffer.from('/'), name]) : Buffer.from(name);
}

/** The `path` record of PAX extended header data (`"%d path=%s\n"` records). */
function paxPath(data: Buffer): Buffer | null {
  let found: Buffer | null = null;
  for (let at = 0; at < data.length;) {
    const space = data.indexOf(0x20, at);
    if (space < 0) break;
    const len = parseInt(data.subarray(at, space).toString('latin1'), 10);
    if (!(len > 0)) break;
    const record = data.subarray(space + 1, at + len - 1); // without the newline
    const eq = record.indexOf(0x3d);
    if (eq > 0 && record.subarray(0, eq).toString('latin1') === 'path')
      found = Buffer.from(record.subarray(eq + 1));
    at += len;
  }
  return found;
}

/** `./usr/bin/` → `usr/bin`. */
function trimName(name: Buffer): Buffer {
  let start = 0;
  let end = name.length;
  while (start < end && (name[start] === 0x2f || (name[start] === 0x2e && name[start + 1] === 0x2f))) {
    start += name[start] === 0x2e ? 2 : 1;
  }
  while (end > start && name[end - 1] === 0x2f) end--;
  return Buffer.from(name.subarray(start, end));
}
