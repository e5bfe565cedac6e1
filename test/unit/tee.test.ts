import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { teeStream, type Branch } from '../../src/destinations/registries.js';

const CHUNK = 64 * 1024;

/** A branch whose stream takes each chunk after `delayMs`, or fails at chunk `failAt`. */
function branch(opts: { delayMs?: number; failAt?: number } = {}) {
  const received: Buffer[] = [];
  let bytes = 0;
  const stream = new Writable({
    highWaterMark: CHUNK,
    write(chunk: Buffer, _enc, done) {
      if (opts.failAt !== undefined && received.length === opts.failAt)
        return done(new Error('registry down'));
      setTimeout(() => {
        received.push(chunk);
        bytes += chunk.length;
        done();
      }, opts.delayMs ?? 0);
    },
  });
  const b: Branch = {
    place: {} as Branch['place'],
    pending: { stream, commit: async () => {}, abort: async () => {} },
  };
  return { b, received, bytes: () => bytes };
}

function source(data: Buffer): Readable {
  const chunks = Array.from({ length: data.length / CHUNK }, (_, i) =>
    data.subarray(i * CHUNK, (i + 1) * CHUNK),
  );
  return Readable.from(chunks, { objectMode: false });
}

describe('teeStream', () => {
  it('gives every branch every byte, at the pace of the slowest', async () => {
    const data = randomBytes(64 * CHUNK);
    const fast = branch();
    const slow = branch({ delayMs: 2 });
    let ahead = 0;
    const watch = setInterval(() => (ahead = Math.max(ahead, fast.bytes() - slow.bytes())), 1);
    await pipeline(source(data), teeStream([fast.b, slow.b]));
    clearInterval(watch);
    expect(Buffer.concat(fast.received).equals(data)).toBe(true);
    expect(Buffer.concat(slow.received).equals(data)).toBe(true);
    // Never more than what the two streams buffer: the fast one waits for the slow one.
    expect(ahead).toBeLessThanOrEqual(4 * CHUNK);
  });

  it('leaves a failing branch behind and finishes the others', async () => {
    const data = randomBytes(16 * CHUNK);
    const ok = branch();
    const down = branch({ failAt: 3 });
    await pipeline(source(data), teeStream([down.b, ok.b]));
    expect(Buffer.concat(ok.received).equals(data)).toBe(true);
    expect(down.b.error?.message).toBe('registry down');
    expect(ok.b.error).toBeUndefined();
  });

  it('fails when every branch has failed', async () => {
    const data = randomBytes(16 * CHUNK);
    const a = branch({ failAt: 1 });
    const b = branch({ failAt: 2 });
    await expect(pipeline(source(data), teeStream([a.b, b.b]))).rejects.toThrow('registry down');
  });
});
