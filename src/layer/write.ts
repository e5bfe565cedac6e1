import { createHash, type Hash } from 'node:crypto';
import { constants, type promises as fsp } from 'node:fs';
import { open } from 'node:fs/promises';
import { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { show, type Logger } from '../log.js';
import type { Entry } from '../walk/walk.js';
import { compressor, LAYER_MEDIA_TYPE, type Compression } from './compress.js';
import { encodeHeader, END_OF_ARCHIVE, zeroPad, type TarHeader } from './tar.js';
import type { Descriptor } from '../image/oci.js';

/** Where the compressed bytes of a blob go; the digest is known only once they have all passed. */
export interface BlobSink {
  /** `expected` is given when the sink asked for the digest first (see below). */
  create(expected?: { digest: string; size: number }): Promise<PendingBlob>;
  /** True when this sink must know the digest before the first byte (monolithic uploads). */
  needsDigestFirst?(): boolean;
}

/** A sink that keeps nothing: a pass that only computes a layer's digests. */
export const DISCARD: BlobSink = {
  create: async () => ({
    stream: new Writable({ write: (_c, _e, done) => done() }),
    commit: async () => {},
    abort: async () => {},
  }),
};

export interface PendingBlob {
  stream: Writable;
  /** Called once the stream has finished, with the digest and size computed on the way. */
  commit(digest: string, size: number): Promise<void>;
  abort(): Promise<void>;
}

export interface LayerResult {
  descriptor: Descriptor;
  /** sha256 of the uncompressed tar: the config's `rootfs.diff_ids` entry. */
  diffId: string;
  uncompressedSize: number;
  entries: number;
}

export interface LayerInput {
  root: string;
  entries: Entry[];
  indices: number[];
  compression: Compression;
  level: number;
  log: Logger;
}

const READ_CHUNK = 1024 * 1024;
/** Headers and small files are gathered into batches this big: fewer, larger writes into zlib. */
const BATCH = 256 * 1024;

/**
 * Writes one layer: a deterministic tar of the given entries, digested before and after compression
 * in the same pass, streamed into `sink`. Nothing is held whole in memory.
 */
export async function writeLayer(
  input: LayerInput,
  sink: BlobSink,
  expected?: { digest: string; size: number },
): Promise<LayerResult> {
  const diff = new HashTap();
  const compressed = new HashTap();
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
export class PermissionError extends Error {}

/** Passes bytes through unchanged while hashing and counting them. */
export class HashTap extends Transform {
  bytes = 0;
  private readonly hash: Hash = createHash('sha256');
  private hex?: string;

  override _transform(
    chunk: Buffer,
    _enc: BufferEncoding,
    done: (err?: Error | null, data?: Buffer) => void,
  ) {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    done(null, chunk);
  }

  digest(): string {
    this.hex ??= this.hash.digest('hex');
    return `sha256:${this.hex}`;
  }
}

const SLASH = Buffer.from('/');

/** The tar bytes of a layer, entry by entry, in the order of `indices`. */
async function* tarStream(input: LayerInput): AsyncGenerator<Buffer> {
  const { entries, indices, root, log } = input;
  const rootBuf = Buffer.from(root.replace(/\/+$/, ''));
  const firstOfGroup = new Map<string, Buffer>();
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
    const e = entries[i];
    const header = headerOf(e);
    if (e.kind !== 'file') {
      add(encodeHeader({ ...header, size: 0 }));
    } else if (e.linkGroup && firstOfGroup.has(e.linkGroup)) {
      add(encodeHeader({ ...header, type: 'hardlink', size: 0, linkName: firstOfGroup.get(e.linkGroup) }));
    } else {
      const abs = Buffer.concat([rootBuf, SLASH, e.path]);
      const file = await openForRead(abs);
      if (!file) {
        log.warn(`${show(abs)} vanished or stopped being a regular file before it was read; left out`);
        continue;
      }
      if (e.linkGroup) firstOfGroup.set(e.linkGroup, e.path);
      try {
        add(encodeHeader(header));
        if (e.size <= BATCH) {
          for await (const chunk of readExactly(file, e.size, abs, log)) add(chunk);
        } else {
          if (batched) yield flush();
          for await (const chunk of readExactly(file, e.size, abs, log)) yield chunk;
        }
        add(zeroPad(e.size));
        await warnIfChanged(file, e, abs, log);
      } finally {
        await file.close();
      }
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

async function openForRead(abs: Buffer): Promise<fsp.FileHandle | null> {
  // O_NOATIME: reading for a snapshot must not change what a later snapshot compares.
  const flags = constants.O_RDONLY | constants.O_NOFOLLOW;
  for (const extra of [constants.O_NOATIME ?? 0, 0]) {
    try {
      const file = await open(abs, flags | extra | constants.O_NONBLOCK);
      // Replaced by a directory or a fifo since the walk: not the file the header would describe.
      if ((await file.stat()).isFile()) return file;
      await file.close();
      return null;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Gone, replaced by a symlink, or a parent directory replaced by a file since the walk.
      if (code === 'ENOENT' || code === 'ELOOP' || code === 'ENOTDIR') return null;
      if (code === 'EACCES') {
        throw new PermissionError(
          `cannot read ${show(abs)}: permission denied; capturing this tree needs root (run the step as root or with sudo)`,
        );
      }
      if (code !== 'EPERM' || extra === 0) throw err;
    }
  }
  return null;
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

async function warnIfChanged(file: fsp.FileHandle, e: Entry, abs: Buffer, log: Logger): Promise<void> {
  const st = await file.stat({ bigint: true });
  const mtimeNs = BigInt(e.mtimeSec) * 1_000_000_000n + BigInt(e.mtimeNsec);
  if (st.size > BigInt(e.size)) {
    log.warn(`${show(abs)} grew while it was read; captured its first ${e.size} bytes`);
  } else if (st.size === BigInt(e.size) && st.mtimeNs !== mtimeNs) {
    log.warn(`${show(abs)} changed while it was read; its content may be a mix of before and after`);
  }
}
