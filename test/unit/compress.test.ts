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

/** gzip `data` through our compressor, written in pieces of `piece` bytes. */
async function gzip(data: Buffer, piece: number, level = 1): Promise<Buffer> {
  const parts: Buffer[] = [];
  async function* pieces() {
    for (let at = 0; at < data.length; at += piece) yield data.subarray(at, at + piece);
  }
  await pipeline(
    Readable.from(pieces(), { objectMode: false }),
    compressor('gzip', level),
    new Writable({ write: (c: Buffer, _e, done) => (parts.push(c), done()) }),
  );
  return Buffer.concat(parts);
}

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
