import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { compressor } from '../../src/layer/compress.js';

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
