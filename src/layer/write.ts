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
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { show, type Logger } from '../log.js';
import type { Entry, EntryTable } from '../walk/entries.js';
import { compressor, LAYER_MEDIA_TYPE, type Compression } from './compress.js';
import { encodeHeader, END_OF_ARCHIVE, zeroPad, type TarHeader } from './tar.js';
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
  const diff = new HashTap();
  const compressed = new HashTap(counters && ((n) => (counters.compressed += n)));
  const pending = await sink.create(expected);
  try {
    await pipeline(
      Readable.from(tarStream(input), { objectMode: false, highWaterMark: BATCH }),
      diff,
      compressor(input.compression, input.level),
      compressed,
      pending.stream,
    );
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

/** A file the process may not read: the capture cannot be faithful, so it stops with one line. */
export class PermissionError extends UserError {
  override readonly rootMayHelp = true;
}

const SLASH = Buffer.from('/');

/** The tar bytes of a layer, entry by entry, in the order of `indices`. */
async function* tarStream(input: LayerInput): AsyncGenerator<Buffer> {
  const { entries, indices, root, log, counters } = input;
  const rootBuf = Buffer.from(root.replace(/\/+$/, ''));
  // Paths as latin1 strings: a Buffer from the table may be a slice of a shared pool, kept whole.
  const firstOfGroup = new Map<string, string>();
  let batch: Buffer[] = [];
  let batched = 0;
  const flush = () => {
    const out = batch.length === 1 ? batch[0] : Buffer.concat(batch, batched);
    batch = [];
    batched = 0;
    return out;
  };
  const add = (b: Buffer) => {
    batch.push(b);
    batched += b.length;
  };

  for (const i of indices) {
    const e = entries.get(i);
    const header = headerOf(e);
    if (e.kind !== 'file') {
      add(encodeHeader({ ...header, size: 0 }));
    } else if (e.linkGroup && !e.content && firstOfGroup.has(e.linkGroup)) {
      const linkName = Buffer.from(firstOfGroup.get(e.linkGroup)!, 'latin1');
      add(encodeHeader({ ...header, type: 'hardlink', size: 0, linkName }));
    } else {
      const abs = Buffer.concat([rootBuf, SLASH, e.path]);
      // Most files of a system are small: read whole, synchronously, as tar does. Four thread-pool
      // round trips (open, read, stat, close) cost more than the read itself.
      const source =
        e.content ?? (e.size <= SMALL_FILE ? readSmallFile(abs, e, log) : await openForRead(abs));
      if (!source) {
        log.warn(`${show(abs)} vanished or stopped being a regular file before it was read; left out`);
        continue;
      }
      if (e.linkGroup) firstOfGroup.set(e.linkGroup, e.path.toString('latin1'));
      add(encodeHeader(header));
      if (Buffer.isBuffer(source)) {
        add(source);
        if (counters) counters.read += source.length;
      } else {
        try {
          if (batched) yield flush();
          for await (const chunk of readExactly(source, e.size, abs, log)) {
            if (counters) counters.read += chunk.length;
            yield chunk;
          }
          warnIfChanged(await source.stat({ bigint: true }), e, abs, log);
        } finally {
          await source.close();
        }
      }
      add(zeroPad(e.size));
    }
    if (batched >= BATCH) yield flush();
  }
  add(END_OF_ARCHIVE);
  yield flush();
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

/** The synchronous twin of openForRead: a descriptor, or null. */
function openForReadSync(abs: Buffer): number | null {
  for (const extra of [NOATIME, 0]) {
    try {
      const fd = openSync(abs, READ_FLAGS | extra);
      if (fstatSync(fd).isFile()) return fd;
      closeSync(fd);
      return null;
    } catch (err) {
      if (!retryOpen(err, abs, extra)) return null;
    }
  }
  return null;
}

/** After a failed open: false when the file is gone, true to retry without O_NOATIME; else throws. */
function retryOpen(err: unknown, abs: Buffer, extra: number): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  // Gone, replaced by a symlink, or a parent directory replaced by a file since the walk.
  if (code === 'ENOENT' || code === 'ELOOP' || code === 'ENOTDIR') return false;
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
 * A small file's bytes, exactly `e.size` of them whatever the file did since the walk (see
 * readExactly), or null when it is gone.
 */
function readSmallFile(abs: Buffer, e: Entry, log: Logger): Buffer | null {
  const fd = openForReadSync(abs);
  if (fd === null) return null;
  try {
    const buf = Buffer.alloc(e.size);
    let pos = 0;
    while (pos < e.size) {
      const n = readSync(fd, buf, pos, e.size - pos, pos);
      if (n === 0) break;
      pos += n;
    }
    if (pos < e.size)
      log.warn(
        `${show(abs)} shrank while it was read (${pos} of ${e.size} bytes); the rest is written as zeros`,
      );
    else warnIfChanged(fstatSync(fd, { bigint: true }), e, abs, log);
    return buf;
  } finally {
    closeSync(fd);
  }
}

/**
 * Exactly `size` bytes, whatever the file does meanwhile: the header already promised that many. A
 * file that shrank is padded with zeros, one that grew is cut; both are warned about.
 */
async function* readExactly(
  file: fsp.FileHandle,
  size: number,
  abs: Buffer,
  log: Logger,
): AsyncGenerator<Buffer> {
  let pos = 0;
  while (pos < size) {
    const want = Math.min(READ_CHUNK, size - pos);
    const buf = Buffer.allocUnsafe(want);
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
