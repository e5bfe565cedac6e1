import os from 'node:os';
import { PassThrough, Transform, type TransformCallback } from 'node:stream';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { MediaType } from '../content/oci.js';
import { limiter } from '../util/limit.js';

/** The layer compressions, in the order help and errors list them. */
export const COMPRESSIONS = ['gzip', 'zstd', 'none'] as const;
export type Compression = (typeof COMPRESSIONS)[number];

export const LEVELS: Record<Compression, { min: number; max: number; default: number }> = {
  // gzip level 1: compression bounds a full capture. Measured on a 1.7 GB rootfs (bench/RESULTS.md):
  // level 6 took 1.7x as long for layers only 7 % smaller; every later pull reads either quickly.
  gzip: { min: 1, max: 9, default: 1 },
  zstd: { min: 1, max: 19, default: 3 },
  none: { min: 0, max: 0, default: 0 },
};

export const LAYER_MEDIA_TYPE: Record<Compression, string> = {
  gzip: MediaType.layerGzip,
  zstd: MediaType.layerZstd,
  none: MediaType.layerTar,
};

/** Zstandard needs Node's zlib with zstd (Node 22.15+/24): the action's own runtime has it. */
export function zstdAvailable(): boolean {
  return typeof (zlib as { zstdCompress?: unknown }).zstdCompress === 'function';
}

/**
 * A compressing stream. gzip and zstd cut the stream into blocks compressed side by side on the libuv
 * pool (two per core at most, across every layer), so a single layer keeps every core busy.
 */
export function compressor(kind: Compression, level: number): Transform {
  switch (kind) {
    case 'gzip':
      return new BlockCompressor(gzipBlocks(level));
    case 'zstd':
      if (!zstdAvailable())
        throw new Error('zstd compression needs Node.js 22.15 or newer (the action runs on node24)');
      return new BlockCompressor(zstdFrames(level));
    case 'none':
      return new PassThrough({ highWaterMark: 1024 * 1024 });
  }
}

/** How a format compresses a stream block by block. */
interface BlockCodec {
  /** Input bytes per block (the last may be shorter, even empty). */
  blockSize: number;
  header: Buffer;
  /** How many bytes before a block its compression may refer back to (0: blocks stand alone). */
  window: number;
  /** Compresses one block; `before` holds the `window` bytes before it (empty for the first). */
  compress(block: Buffer, before: Buffer, last: boolean): Promise<Buffer>;
  /** Sees every block, in order, before it is compressed. */
  observe?(block: Buffer): void;
  trailer(): Buffer;
}

const deflateRaw = promisify(zlib.deflateRaw);
/** Deflate looks back at most 32 KiB: each block is primed with that much of the one before it. */
const WINDOW = 32 * 1024;

/**
 * gzip as pigz writes it: 2 MiB blocks, each deflated with the 32 KiB before it as its dictionary
 * and ended by a sync flush, so the raw deflate outputs concatenate into one stream that the last
 * block finishes; one ordinary gzip member that every reader reads. On a 0.7 GB tar: 9.1 s against
 * 15.2 s for one zlib stream and 9.5 s for `pigz -p2`, at the same size and less CPU than either.
 */
function gzipBlocks(level: number): BlockCodec {
  // 2 MiB: each block also hashes the 32 KiB before it, 1.5 % more input (3 % at 1 MiB).
  const blockSize = 2 * 1024 * 1024;
  let crc = 0;
  let length = 0;
  return {
    blockSize,
    // RFC 1952 header as zlib writes it: no name, no mtime; XFL says "fastest" or "best"; OS Unix.
    header: Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, level === 1 ? 4 : level === 9 ? 2 : 0, 3]),
    observe(block) {
      crc = zlib.crc32(block, crc);
      length += block.length;
    },
    window: WINDOW,
    async compress(block, before, last) {
      if (await incompressible(block)) return storedBlocks(block, last);
      return deflateRaw(block, {
        level,
        ...(before.length ? { dictionary: before } : {}),
        finishFlush: last ? zlib.constants.Z_FINISH : zlib.constants.Z_SYNC_FLUSH,
        // Room for the whole output even when nothing compresses: one pool round trip per block
        // (16 KiB outputs made 30 of them, and cost a fifth more CPU).
        chunkSize: blockSize + 64 * 1024,
      });
    },
    trailer() {
      const t = Buffer.alloc(8);
      t.writeUInt32LE(crc >>> 0, 0);
      t.writeUInt32LE(length % 2 ** 32, 4);
      return t;
    },
  };
}

/** Slices of a block deflated to judge it, and their size: 32 KiB, evenly spread over the block. */
const SAMPLE_SLICES = 8;
const SAMPLE_SLICE = 4 * 1024;
/** A block whose sample deflates to more than this share of its size is stored, not deflated. */
const STORE_ABOVE = 0.98;

/**
 * Whether a block is not worth deflating (already compressed: packages, wheels, archives, images),
 * judged by deflating a sample of it at level 1: slices at fixed places, so the decision depends on
 * the block's bytes alone and the same tree gives the same layer. Deflate at level 1 runs at about
 * 32 MB/s over such data (against 54 over a rootfs's), to save nothing; the sample costs 1.7 % of a
 * block's deflate. On a tree half of .debs, 107 of 197 blocks were stored, for a layer 0.2 % larger.
 */
async function incompressible(block: Buffer): Promise<boolean> {
  if (block.length < SAMPLE_SLICES * SAMPLE_SLICE * 2) return false;
  const sample = Buffer.allocUnsafe(SAMPLE_SLICES * SAMPLE_SLICE);
  for (let k = 0; k < SAMPLE_SLICES; k++) {
    const from = Math.floor((k * block.length) / SAMPLE_SLICES);
    block.copy(sample, k * SAMPLE_SLICE, from, from + SAMPLE_SLICE);
  }
  const deflated = await deflateRaw(sample, { level: 1 });
  return deflated.length > STORE_ABOVE * sample.length;
}

/** The most bytes one deflate stored block holds (its LEN field is 16 bits). */
const STORED_MAX = 0xffff;

/**
 * `block` as deflate stored blocks (RFC 1951, 3.2.4): a header byte (BFINAL only on the stream's last
 * block, BTYPE 00), LEN and its complement, then the bytes as they are. The block before ended
 * byte-aligned (a sync flush, or stored blocks), as a stored block's header must start; and like a
 * sync flush, stored blocks end byte-aligned, so the next block follows as usual.
 */
export function storedBlocks(block: Buffer, last: boolean): Buffer {
  const count = Math.max(1, Math.ceil(block.length / STORED_MAX));
  const out = Buffer.allocUnsafe(block.length + 5 * count);
  let at = 0;
  for (let k = 0; k < count; k++) {
    const start = k * STORED_MAX;
    const len = Math.min(STORED_MAX, block.length - start);
    out[at] = last && k === count - 1 ? 1 : 0;
    out.writeUInt16LE(len, at + 1);
    out.writeUInt16LE(~len & 0xffff, at + 3);
    at += 5 + block.copy(out, at + 5, start, start + len);
  }
  return out;
}

/**
 * zstd as independent 4 MiB frames, one after another: a stream of several frames is a valid zstd
 * stream (RFC 8878, 3.1) that every decoder reads, containerd's and `zstd -d` alike. On 300 MB of a
 * rootfs tar (Node 24): 2.6 s against 4.8 s for one stream, 0.3 % larger.
 */
function zstdFrames(level: number): BlockCodec {
  const z = zlib as unknown as {
    zstdCompress(b: Buffer, o: object, cb: (err: Error | null, out: Buffer) => void): void;
    constants: Record<string, number>;
  };
  const zstdCompress = promisify(z.zstdCompress);
  const blockSize = 4 * 1024 * 1024;
  return {
    blockSize,
    header: Buffer.alloc(0),
    window: 0,
    compress: (block) =>
      zstdCompress(block, {
        params: { [z.constants.ZSTD_c_compressionLevel]: level },
        chunkSize: blockSize + 64 * 1024,
      }),
    trailer: () => Buffer.alloc(0),
  };
}

/**
 * Blocks compressed at once across every layer: two per core. With one per core, a core idled
 * whenever the main thread was busy (reading small files, hashing) as a block finished, since only
 * the main thread starts the next one: a 4.1 GB capture took 55.8 s instead of 52.0.
 */
const compressing = limiter(2 * os.availableParallelism());
/** Blocks of one stream queued or in flight at once. */
const PER_STREAM = os.availableParallelism() + 1;

/**
 * Cuts a stream into the codec's blocks, compresses several at a time, and passes the
 * results on in order. The bytes depend only on the input, the codec and the level (never on how the
 * input arrived or which block finished first), so layers stay reproducible.
 *
 * Input is copied into blocks kept for reuse: a new block per 4 MiB (Buffer.concat) made the
 * main thread spend a quarter of a zstd capture collecting garbage, since every large buffer freed
 * counts towards V8's next full collection.
 */
class BlockCompressor extends Transform {
  /** The block being filled, and how much of it is. */
  private block: Buffer;
  private filled = 0;
  /** Blocks whose compression has finished, free to fill again. */
  private readonly spare: Buffer[] = [];
  private before = Buffer.alloc(0);
  private readonly inFlight: Array<Promise<Buffer>> = [];

  constructor(private readonly codec: BlockCodec) {
    super({ readableHighWaterMark: codec.blockSize });
    this.block = Buffer.allocUnsafeSlow(codec.blockSize);
    if (codec.header.length) this.push(codec.header);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.fill(chunk).then(() => done(), done);
  }

  override _flush(done: TransformCallback): void {
    this.finish().then(() => {
      this.push(this.codec.trailer());
      done();
    }, done);
  }

  /** Copies `chunk` into blocks, starting each one as it fills. */
  private async fill(chunk: Buffer): Promise<void> {
    for (let at = 0; at < chunk.length;) {
      const copied = chunk.copy(this.block, this.filled, at);
      at += copied;
      this.filled += copied;
      if (this.filled < this.codec.blockSize) continue;
      const full = this.block;
      this.block = this.spare.pop() ?? Buffer.allocUnsafeSlow(this.codec.blockSize);
      this.filled = 0;
      await this.start(full, full, false);
    }
  }

  /** Starts what is left as the last block (even if empty: gzip ends its stream there). */
  private async finish(): Promise<void> {
    await this.start(this.block.subarray(0, this.filled), this.block, true);
    while (this.inFlight.length) this.push(await this.inFlight.shift()!);
  }

  /**
   * Queues `data` (in `block`, given back to the spare ones once compressed); once PER_STREAM are
   * in flight, waits for the oldest and passes it on.
   */
  private async start(data: Buffer, block: Buffer, last: boolean): Promise<void> {
    this.codec.observe?.(data);
    const before = this.before;
    // A copy: the block is filled again once compressed.
    if (this.codec.window) this.before = Buffer.from(data.subarray(-this.codec.window));
    const job = compressing(() => this.codec.compress(data, before, last));
    job.then(
      () => this.spare.push(block),
      () => {}, // awaited in order below; a rejection is reported there
    );
    this.inFlight.push(job);
    if (this.inFlight.length >= PER_STREAM) this.push(await this.inFlight.shift()!);
  }
}
