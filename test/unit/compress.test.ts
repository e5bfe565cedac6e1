import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import type { BlobSink } from '../../src/content/blob.js';
import { compressor } from '../../src/layer/compress.js';
import { writeLayer } from '../../src/layer/write.js';
import { scanRoot } from '../../src/walk/scan.js';
import { cleanupAll, tmpDir } from '../helpers/tools.js';

const MiB = 1024 * 1024;

/** Half text-like (compressible, with matches reaching across block edges), half random. */
function sample(size: number): Buffer {
  const out = Buffer.alloc(size);
  const words = Buffer.from('usr/lib/x86_64-linux-gnu libc.so.6 ' + 'python3.11 site-packages '.repeat(3));
  for (let at = 0; at < size; at += words.length) words.copy(out, at);
  randomBytes(Math.floor(size / 2)).copy(out, Math.floor(size / 4));
  return out;
}

/** `data` through our compressor, written in pieces of `piece` bytes. */
async function compress(kind: 'gzip' | 'zstd', data: Buffer, piece: number, level: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  async function* pieces() {
    for (let at = 0; at < data.length; at += piece) yield data.subarray(at, at + piece);
  }
  await pipeline(
    Readable.from(pieces(), { objectMode: false }),
    compressor(kind, level),
    new Writable({ write: (c: Buffer, _e, done) => (parts.push(c), done()) }),
  );
  return Buffer.concat(parts);
}

const gzip = (data: Buffer, piece: number, level = 1) => compress('gzip', data, piece, level);
const zstd = (data: Buffer, piece: number, level = 3) => compress('zstd', data, piece, level);

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('gzip in parallel blocks', () => {
  for (const size of [0, 1, 2 * MiB - 1, 2 * MiB, 2 * MiB + 1, 5.5 * MiB]) {
    it(`${size} bytes: zlib and the gzip command read back the input, bytes alike however it is written`, async () => {
      const data = sample(size);
      const whole = await gzip(data, Math.max(size, 1));
      const small = await gzip(data, 4093);
      expect(sha(small)).toBe(sha(whole)); // the blocks are cut by offset, not by how bytes arrive
      expect(sha(zlib.gunzipSync(whole))).toBe(sha(data));
      const viaCommand = execFileSync('gzip', ['-dc'], { input: whole, maxBuffer: 64 * MiB });
      expect(sha(viaCommand)).toBe(sha(data));
      execFileSync('gzip', ['-t'], { input: whole }); // CRC and length in the trailer are right
    });
  }

  it('compresses about as well as one zlib stream, and higher levels still do better', async () => {
    const data = sample(6 * MiB);
    const ours = await gzip(data, MiB);
    const single = zlib.gzipSync(data, { level: 1 });
    expect(ours.length).toBeLessThan(single.length * 1.01);
    expect((await gzip(data, MiB, 9)).length).toBeLessThan(ours.length);
  });
});

describe('gzip of incompressible blocks', () => {
  /** Random 2 MiB blocks between text ones: `pattern` says which is which, `r` or `t`, block by block. */
  function mixed(pattern: string, tail = 0): Buffer {
    const parts = [...pattern].map((kind) =>
      kind === 'r' ? randomBytes(2 * MiB) : Buffer.alloc(2 * MiB, 'usr/share/doc/copyright\n'),
    );
    return Buffer.concat([...parts, randomBytes(tail)]);
  }

  /** The gzip size of `n` bytes written as stored blocks of at most 65535 bytes each, in 2 MiB blocks. */
  function storedSize(n: number): number {
    // Header and trailer; a stream of whole blocks ends with an empty last one, deflated: 2 bytes.
    let size = 10 + 8 + (n % (2 * MiB) === 0 ? 2 : 0);
    for (let at = 0; at < n; at += 2 * MiB)
      size += Math.min(2 * MiB, n - at) + 5 * Math.ceil(Math.min(2 * MiB, n - at) / 0xffff);
    return size;
  }

  it('stores random blocks as they are: their size is their bytes plus 5 per 64 KiB', async () => {
    for (const n of [4 * MiB, 4 * MiB + 100_000]) {
      const data = randomBytes(n);
      const out = await gzip(data, 1000_003);
      expect(out.length).toBe(storedSize(n));
      expect(sha(zlib.gunzipSync(out))).toBe(sha(data));
    }
  });

  it('mixes stored and deflated blocks into one stream that zlib and the gzip command read back', async () => {
    for (const [pattern, tail] of [
      ['trtr', 0],
      ['rtrrt', 12345],
      ['ttrr', 0], // whole blocks: an empty last block ends the stream
      ['tr', MiB], // a random last block, stored: it carries the final bit
      ['rr', 1], // a last block too short to judge, deflated after stored ones
    ] as const) {
      const data = mixed(pattern, tail);
      const out = await gzip(data, 777_777);
      expect(sha(await gzip(data, data.length)), pattern).toBe(sha(out)); // same bytes however written
      expect(sha(zlib.gunzipSync(out)), pattern).toBe(sha(data));
      const viaCommand = execFileSync('gzip', ['-dc'], { input: out, maxBuffer: 64 * MiB });
      expect(sha(viaCommand), pattern).toBe(sha(data));
      execFileSync('gzip', ['-t'], { input: out });
      // The random blocks cost their size and no more; the text ones still compress.
      const randomBytesIn = [...pattern].filter((k) => k === 'r').length * 2 * MiB + tail;
      expect(out.length, pattern).toBeLessThan(
        randomBytesIn * 1.001 + 0.01 * (data.length - randomBytesIn) + 1024,
      );
    }
  });
});

/** Node's zstd (22.15+), which the installed @types/node does not declare yet. */
const zlibZstd = zlib as unknown as {
  zstdCompressSync(data: Buffer): Buffer;
  zstdDecompressSync(data: Buffer): Buffer;
};

describe('zstd in parallel frames', () => {
  for (const size of [0, 1, 4 * MiB - 1, 4 * MiB, 4 * MiB + 1, 13.5 * MiB]) {
    it(`${size} bytes: zlib and the zstd command read back the input, bytes alike however it is written`, async () => {
      const data = sample(size);
      const whole = await zstd(data, Math.max(size, 1));
      // Pieces of odd sizes, and pieces larger than a frame: frames are cut by offset alone.
      for (const piece of [4093, 5 * MiB + 3])
        expect(sha(await zstd(data, piece)), `${piece}`).toBe(sha(whole));
      expect(sha(zlibZstd.zstdDecompressSync(whole))).toBe(sha(data));
      const viaCommand = execFileSync('zstd', ['-dc'], { input: whole, maxBuffer: 64 * MiB });
      expect(sha(viaCommand)).toBe(sha(data));
    });
  }

  it('compresses about as well as one zstd stream', async () => {
    const data = sample(9 * MiB);
    const ours = await zstd(data, MiB);
    const single = zlibZstd.zstdCompressSync(data);
    expect(ours.length).toBeLessThan(single.length * 1.01);
  });
});

describe('a layer, compressed or not', () => {
  afterAll(cleanupAll);

  /** A sink that keeps the blob in memory. */
  function memorySink(): BlobSink & { bytes(): Buffer } {
    const chunks: Buffer[] = [];
    return {
      bytes: () => Buffer.concat(chunks),
      create: async () => ({
        stream: new Writable({ write: (c: Buffer, _e, done) => (chunks.push(c), done()) }),
        commit: async () => {},
        abort: async () => {},
      }),
    };
  }

  it('holds the same tar whatever the compression, its diff ID the digest of that tar', async () => {
    // Files larger than a read (1 MiB) and than a frame, small ones filling several 1 MiB batches,
    // each with bytes of its own: a buffer filled again before its bytes were taken shows.
    const root = await tmpDir('layer-bytes');
    await mkdir(path.join(root, 'small'));
    for (let i = 0; i < 400; i++) await writeFile(path.join(root, 'small', `f${i}`), randomBytes(i * 97));
    for (const size of [64 * 1024 + 1, 1024 * 1024, 2.5 * MiB, 9 * MiB + 3])
      await writeFile(path.join(root, `large-${size}`), sample(size));
    const log = { info() {}, debug() {}, warn: (m: string) => expect.fail(m) };
    const scan = await scanRoot({ root, exclude: [], include: [], ownPaths: [], rewritten: [], log });
    const indices = Array.from({ length: scan.entries.length }, (_, i) => i);

    const layer = async (compression: 'none' | 'gzip' | 'zstd') => {
      const sink = memorySink();
      const level = compression === 'none' ? 0 : 1;
      const r = await writeLayer({ root, entries: scan.entries, indices, compression, level, log }, sink);
      return { r, blob: sink.bytes() };
    };
    const plain = await layer('none');
    expect(plain.r.diffId).toBe(`sha256:${sha(plain.blob)}`);
    for (const [kind, unpack] of [
      ['gzip', zlib.gunzipSync],
      ['zstd', zlibZstd.zstdDecompressSync],
    ] as const) {
      const { r, blob } = await layer(kind);
      expect(sha(unpack(blob)), kind).toBe(sha(plain.blob));
      expect(r.diffId, kind).toBe(plain.r.diffId);
      expect(r.uncompressedSize, kind).toBe(plain.blob.length);
      expect(r.descriptor.digest, kind).toBe(`sha256:${sha(blob)}`);
      expect(r.descriptor.size, kind).toBe(blob.length);
    }
  });

  it('fails with what stopped the blob being written, and aborts it', async () => {
    const root = await tmpDir('layer-fails');
    for (let i = 0; i < 8; i++) await writeFile(path.join(root, `large-${i}`), sample(3 * MiB));
    const log = { info() {}, debug() {}, warn: (m: string) => expect.fail(m) };
    const scan = await scanRoot({ root, exclude: [], include: [], ownPaths: [], rewritten: [], log });
    const indices = Array.from({ length: scan.entries.length }, (_, i) => i);
    for (const compression of ['none', 'gzip', 'zstd'] as const) {
      const ended: string[] = [];
      let written = 0;
      const full: BlobSink = {
        create: async () => ({
          stream: new Writable({
            write: (c: Buffer, _e, done) => {
              written += c.length;
              done(written > 5 * MiB ? new Error('no space left on device') : null);
            },
          }),
          commit: async () => void ended.push('commit'),
          abort: async () => void ended.push('abort'),
        }),
      };
      const layer = writeLayer({ root, entries: scan.entries, indices, compression, level: 1, log }, full);
      await expect(layer, compression).rejects.toThrow('no space left on device');
      expect(ended, compression).toEqual(['abort']);
    }
  });
});
