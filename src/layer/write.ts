import {
  closeSync,
  constants,
  fstatSync,
  openSync,
  readSync,
  type BigIntStats,
  type promises as fsp,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { show, type Logger } from '../log.js';
import type { Entry, EntryTable } from '../walk/entries.js';
import { compressor, LAYER_MEDIA_TYPE, type Compression } from './compress.js';
import { BLOCK, encodeHeaderInto, END_OF_ARCHIVE, padLength, type TarHeader } from './tar.js';
import type { Descriptor } from '../content/oci.js';
import { UserError } from '../failure.js';
import { HashTap, type BlobSink } from '../content/blob.js';

export interface LayerResult {
  descriptor: Descriptor;
  /** sha256 of the uncompressed tar: the config's `rootfs.diff_ids` entry. */
  diffId: string;
  uncompressedSize: number;
  entries: number;
}

export interface LayerInput {
  root: string;
  entries: EntryTable;
  indices: number[];
  compression: Compression;
  level: number;
  log: Logger;
  /** Bumped as tar bytes are made and compressed bytes leave, for progress lines. */
  counters?: { read: number; compressed: number };
}

const READ_CHUNK = 1024 * 1024;
/** Headers and small files are gathered into batches this big: fewer, larger writes into zlib. */
const BATCH = 1024 * 1024;

/**
 * Writes one layer: a deterministic tar of the given entries, digested before and after compression
 * in the same pass, streamed into `sink`. Nothing is held whole in memory.
 */
export async function writeLayer(
  input: LayerInput,
  sink: BlobSink,
  expected?: { digest: string; size: number },
): Promise<LayerResult> {
  const counters = input.counters;
  const countCompressed = counters && ((n: number) => (counters.compressed += n));
  const pending = await sink.create(expected);
  try {
    // Uncompressed, the blob is the tar itself: one digest serves as both, and no pass copies it.
    const uncompressed = input.compression === 'none';
    const diff = new HashTap(uncompressed ? countCompressed : undefined);
    const compressed = uncompressed ? diff : new HashTap(countCompressed);
    if (uncompressed) {
      const tar = Readable.from(tarStream(input, false), { objectMode: false, highWaterMark: BATCH });
      await pipeline(tar, diff, pending.stream);
    } else {
      const compressing = compressor(input.compression, input.level);
      const written = pipeline(compressing, compressed, pending.stream);
      await feed(tarStream(input, true), diff, compressing, written);
    }
    const descriptor: Descriptor = {
      mediaType: LAYER_MEDIA_TYPE[input.compression],
      digest: compressed.digest(),
      size: compressed.bytes,
    };
    await pending.commit(descriptor.digest, descriptor.size);
    return { descriptor, diffId: diff.digest(), uncompressedSize: diff.bytes, entries: input.indices.length };
  } catch (err) {
    await pending.abort();
    throw err;
  }
}

/**
 * Writes the tar into the compressor, hashing it on the way, one chunk at a time: the compressor has
 * copied a chunk into its blocks when the write's callback runs, so the tar's buffers are filled
 * again for the next one. A buffer per MiB read, each freed again, cost a zstd capture a full
 * garbage collection every 9 MB (external memory counts against V8's old-generation limit).
 */
async function feed(
  tar: AsyncGenerator<Buffer>,
  diff: HashTap,
  into: Writable,
  written: Promise<void>,
): Promise<void> {
  written.catch(() => {}); // awaited below, after the last write or a failure
  try {
    for await (const chunk of tar) {
      diff.update(chunk);
      await new Promise<void>((resolve, reject) =>
        into.write(chunk, (err) => (err ? reject(err) : resolve())),
      );
    }
    into.end();
  } catch (err) {
    into.destroy(err as Error);
    // What stopped the pipeline (the blob's disk full, say), rather than the write it failed.
    throw await written.then(
      () => err,
      (cause: unknown) => cause,
    );
  }
  await written;
}

/** A file the process may not read: the capture cannot be faithful, so it stops with one line. */
export class PermissionError extends UserError {
  override readonly rootMayHelp = true;
}

/**
 * The tar bytes being gathered for the next write: headers are encoded and small files read straight
 * into one buffer, so a small file costs no allocation of its own. Each full batch is handed on and a
 * new one started; with `reuse`, the consumer is done with a batch before the next is asked for, so
 * the same buffer is filled again, else what is handed on may be held downstream and is never reused.
 */
class TarBatch {
  buf = Buffer.allocUnsafe(BATCH);
  used = 0;

  constructor(private readonly reuse: boolean) {}

  /** Room for `n` more bytes: the batch so far when there is not, to be written first, else null. */
  reserve(n: number): Buffer | null {
    if (this.used + n <= this.buf.length) return null;
    const full = this.take();
    if (n > this.buf.length) this.buf = Buffer.allocUnsafe(n);
    return full;
  }

  /**
   * Encodes a header at the end of the batch (room reserved), returning where it ends; `keep: false`
   * leaves it out of the batch until the caller moves `used` past it.
   */
  header(h: TarHeader, keep = true): number {
    const end = encodeHeaderInto(h, this.buf, this.used);
    if (end < 0) throw new Error('internal: no room reserved for a tar header');
    if (keep) this.used = end;
    return end;
  }

  /** The bytes gathered so far; the batch starts over (in a new buffer unless reused). */
  take(): Buffer {
    const full = this.buf.subarray(0, this.used);
    if (!this.reuse || this.buf.length !== BATCH) this.buf = Buffer.allocUnsafe(BATCH);
    this.used = 0;
    return full;
  }
}

/** The most a header can take: a PAX header of long paths and every xattr, then the ustar block. */
function headerRoom(e: Entry): number {
  let xattrBytes = 0;
  for (const [name, value] of e.xattrs ?? []) xattrBytes += name.length + value.length + 32;
  return 4 * BLOCK + 2 * e.path.length + (e.linkTarget?.length ?? 0) + xattrBytes;
}

/**
 * The tar bytes of a layer, entry by entry, in the order of `indices`. With `reuse`, a chunk is only
 * valid until the next is asked for (its buffer is filled again): for a consumer that copies it.
 */
async function* tarStream(input: LayerInput, reuse: boolean): AsyncGenerator<Buffer> {
  const { entries, indices, root, log, counters } = input;
  const rootBuf = Buffer.from(root.replace(/\/+$/, '') + '/');
  // Each file's absolute path is written into one buffer, after the root: no path is allocated per file.
  let absBuf = Buffer.allocUnsafe(rootBuf.length + 4096);
  rootBuf.copy(absBuf);
  // Paths as latin1 strings: a Buffer from the table may be a slice of a shared pool, kept whole.
  const firstOfGroup = new Map<string, string>();
  const out = new TarBatch(reuse);
  const readBuffer = reuse ? Buffer.allocUnsafe(READ_CHUNK) : undefined;

  for (const i of indices) {
    const e = entries.get(i);
    const header = headerOf(e);
    const small = e.kind === 'file' && e.size <= SMALL_FILE;
    const full = out.reserve(headerRoom(e) + (small ? e.size + 1 + BLOCK : 0));
    if (full?.length) yield full;
    if (e.kind !== 'file') {
      out.header(header);
      continue;
    }
    if (e.linkGroup && !e.content && firstOfGroup.has(e.linkGroup)) {
      const linkName = Buffer.from(firstOfGroup.get(e.linkGroup)!, 'latin1');
      out.header({ ...header, type: 'hardlink', size: 0, linkName });
      continue;
    }
    if (absBuf.length < rootBuf.length + e.path.length)
      absBuf = Buffer.concat([rootBuf, Buffer.alloc(e.path.length)]);
    e.path.copy(absBuf, rootBuf.length);
    const abs = absBuf.subarray(0, rootBuf.length + e.path.length);
    if (e.content || small) {
      const dataAt = out.header(header, false);
      let end: number | null;
      if (e.content) end = dataAt + e.content.copy(out.buf, dataAt);
      else end = readSmallFile(abs, e, out.buf, dataAt, log);
      if (end === null) {
        log.warn(`${show(abs)} vanished or stopped being a regular file before it was read; left out`);
        continue; // nothing of it kept: the next entry writes over its header
      }
      out.buf.fill(0, end, end + padLength(e.size));
      out.used = end + padLength(e.size);
      if (counters) counters.read += e.size;
    } else {
      // A large file: read as it streams, the batch before it written first.
      const source = await openForRead(abs);
      if (!source) {
        log.warn(`${show(abs)} vanished or stopped being a regular file before it was read; left out`);
        continue;
      }
      const path = Buffer.from(abs); // absBuf is rewritten by the next file
      out.header(header);
      yield out.take();
      try {
        for await (const chunk of readExactly(source, e.size, path, log, readBuffer)) {
          if (counters) counters.read += chunk.length;
          yield chunk;
        }
        warnIfChanged(await source.stat({ bigint: true }), e, path, log);
      } finally {
        await source.close();
      }
      const pad = padLength(e.size);
      out.buf.fill(0, 0, pad);
      out.used = pad;
    }
    if (e.linkGroup) firstOfGroup.set(e.linkGroup, e.path.toString('latin1'));
  }
  const full = out.reserve(END_OF_ARCHIVE.length);
  if (full?.length) yield full;
  out.used += END_OF_ARCHIVE.copy(out.buf, out.used);
  yield out.take();
}

function headerOf(e: Entry): TarHeader {
  return {
    name: e.path,
    // A whiteout is an empty regular file named `.wh.<name>` (image-spec, "Whiteouts").
    type: e.kind === 'whiteout' ? 'file' : e.kind,
    mode: e.mode,
    uid: e.uid,
    gid: e.gid,
    size: e.kind === 'file' ? e.size : 0,
    mtimeSec: e.mtimeSec,
    mtimeNsec: e.mtimeNsec,
    linkName: e.linkTarget,
    devMajor: e.devMajor,
    devMinor: e.devMinor,
    xattrs: e.xattrs,
  };
}

// O_NOATIME: reading for a snapshot must not change what a later snapshot compares. O_NONBLOCK: a
// file replaced by a fifo since the walk must not hang the open.
const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const NOATIME = constants.O_NOATIME ?? 0;

/**
 * Opens `abs` for reading: null when it is gone or is no longer a regular file (replaced by a
 * directory, a fifo or a symlink since the walk: not the file the header would describe).
 * O_NOATIME is refused (EPERM) on files this user does not own: then it opens without it.
 */
async function openForRead(abs: Buffer): Promise<fsp.FileHandle | null> {
  for (const extra of [NOATIME, 0]) {
    try {
      const file = await open(abs, READ_FLAGS | extra);
      if ((await file.stat()).isFile()) return file;
      await file.close();
      return null;
    } catch (err) {
      if (!retryOpen(err, abs, extra)) return null;
    }
  }
  return null;
}

/**
 * The synchronous twin of openForRead, without its fstat: a descriptor, or null. The caller's read
 * tells whether it is still the regular file the walk saw (see readSmallFile).
 */
function openSmallFile(abs: Buffer): number | null {
  for (const extra of [NOATIME, 0]) {
    try {
      return openSync(abs, READ_FLAGS | extra);
    } catch (err) {
      if (!retryOpen(err, abs, extra)) return null;
    }
  }
  return null;
}

/** After a failed open: false when the file is gone, true to retry without O_NOATIME; else throws. */
function retryOpen(err: unknown, abs: Buffer, extra: number): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  // Gone, replaced by a symlink or a socket, or a parent directory replaced by a file since the walk.
  if (code === 'ENOENT' || code === 'ELOOP' || code === 'ENOTDIR' || code === 'ENXIO') return false;
  if (code === 'EACCES') {
    throw new PermissionError(
      `cannot read ${show(abs)}: permission denied; capturing this tree needs root (run the step as root or with sudo)`,
    );
  }
  if (code !== 'EPERM' || extra === 0) throw err;
  return true;
}

/** Files up to this size are read whole and synchronously. */
const SMALL_FILE = 64 * 1024;

/**
 * Reads a small file into `buf` at `at`: exactly `e.size` bytes whatever the file did since the walk
 * (see readExactly), returning the offset after them; null when it is gone or no longer a regular
 * file. `buf` has room for one byte more. The size is the walk's lstat: the read asks for one byte
 * more, so a file that grew shows without an fstat, and only a read that does not give exactly that
 * size costs one (a fifo or a directory put in its place reads short or fails).
 */
function readSmallFile(abs: Buffer, e: Entry, buf: Buffer, at: number, log: Logger): number | null {
  const fd = openSmallFile(abs);
  if (fd === null) return null;
  try {
    const want = e.size + 1;
    let got = 0;
    let failure: unknown = null;
    try {
      // Done at the size the walk saw: a regular file reads short only at its end, so the common
      // case is one read, never a second one to see the end.
      do {
        const n = readSync(fd, buf, at + got, want - got, got);
        if (n === 0) break;
        got += n;
      } while (got < e.size);
    } catch (err) {
      failure = err;
    }
    if (got === e.size && !failure) return at + e.size;
    if (!fstatSync(fd).isFile()) return null;
    if (failure) throw failure;
    if (got > e.size) log.warn(`${show(abs)} grew while it was read; captured its first ${e.size} bytes`);
    else {
      log.warn(
        `${show(abs)} shrank while it was read (${got} of ${e.size} bytes); the rest is written as zeros`,
      );
      buf.fill(0, at + got, at + e.size);
    }
    return at + e.size;
  } finally {
    closeSync(fd);
  }
}

/**
 * Exactly `size` bytes, whatever the file does meanwhile: the header already promised that many. A
 * file that shrank is padded with zeros, one that grew is cut; both are warned about. Read into
 * `reused` when given (each chunk then valid until the next is asked for), else into new buffers.
 */
async function* readExactly(
  file: fsp.FileHandle,
  size: number,
  abs: Buffer,
  log: Logger,
  reused?: Buffer,
): AsyncGenerator<Buffer> {
  let pos = 0;
  while (pos < size) {
    const want = Math.min(READ_CHUNK, size - pos);
    const buf = reused ? reused.subarray(0, want) : Buffer.allocUnsafe(want);
    const { bytesRead } = await file.read(buf, 0, want, pos);
    if (bytesRead === 0) {
      log.warn(
        `${show(abs)} shrank while it was read (${pos} of ${size} bytes); the rest is written as zeros`,
      );
      for (let left = size - pos; left > 0; left -= READ_CHUNK)
        yield Buffer.alloc(Math.min(left, READ_CHUNK));
      return;
    }
    pos += bytesRead;
    yield bytesRead === want ? buf : buf.subarray(0, bytesRead);
  }
}

function warnIfChanged(st: BigIntStats, e: Entry, abs: Buffer, log: Logger): void {
  const mtimeNs = BigInt(e.mtimeSec) * 1_000_000_000n + BigInt(e.mtimeNsec);
  if (st.size > BigInt(e.size)) {
    log.warn(`${show(abs)} grew while it was read; captured its first ${e.size} bytes`);
  } else if (st.size === BigInt(e.size) && st.mtimeNs !== mtimeNs) {
    log.warn(`${show(abs)} changed while it was read; its content may be a mix of before and after`);
  }
}
