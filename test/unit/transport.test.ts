import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { StallError } from '../../src/registry/retry.js';
import { httpTransport } from '../../src/registry/transport.js';

const MiB = 1024 * 1024;
let server: http.Server | undefined;

afterEach(() => {
  server?.closeAllConnections();
  server?.close();
  server = undefined;
});

async function listen(handler: http.RequestListener): Promise<URL> {
  server = http.createServer(handler);
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/upload`);
}

/** A body of `total` bytes in 1 MiB chunks (the last byte of each its index), counting what was read. */
function countingBody(total: number): { body: AsyncGenerator<Buffer>; produced: () => number } {
  let produced = 0;
  async function* body() {
    for (let i = 0; produced < total; i++) {
      const chunk = Buffer.alloc(Math.min(MiB, total - produced), i & 0xff);
      produced += chunk.length;
      yield chunk;
    }
  }
  return { body: body(), produced: () => produced };
}

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/**
 * Bytes of Buffers still referenced: garbage collected first, so only what is held counts. V8 frees
 * dead ArrayBuffers on a background sweeper, so a busy machine still counts some right after gc():
 * collect, give the sweeper time, collect again.
 */
async function buffersAfterGc(): Promise<number> {
  gc();
  await new Promise((resolve) => setTimeout(resolve, 100));
  gc();
  await new Promise((resolve) => setTimeout(resolve, 100));
  return process.memoryUsage().arrayBuffers;
}

const timeout = () => AbortSignal.timeout(30_000);

describe('httpTransport', () => {
  it('holds a bounded part of the body, while the server reads and while it pauses', async () => {
    const total = 256 * MiB;
    const source = countingBody(total);
    let aheadWhilePaused = -1;
    let heldHalfway = -1;
    const before = await buffersAfterGc();
    const url = await listen((req, res) => {
      const hash = createHash('sha256');
      let received = 0;
      let paused = false;
      req.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        received += chunk.length;
        if (heldHalfway < 0 && received >= total / 2) {
          // Stop reading while measuring; the sender may only fill the socket buffers meanwhile.
          heldHalfway = 0;
          req.pause();
          void buffersAfterGc().then((held) => {
            heldHalfway = held - before;
            req.resume();
          });
        }
        if (!paused && received >= 8 * MiB) {
          // Stop reading for a while: a sender without back-pressure runs far ahead meanwhile.
          paused = true;
          req.pause();
          setTimeout(() => {
            aheadWhilePaused = source.produced() - received;
            req.resume();
          }, 700);
        }
      });
      req.on('end', () => {
        res.writeHead(201, { Location: '/done', 'Docker-Content-Digest': `sha256:${hash.digest('hex')}` });
        res.end(String(received));
      });
    });
    const res = await httpTransport(url, {
      method: 'PUT',
      headers: { 'Content-Length': String(total) },
      body: source.body,
      signal: timeout(),
    });
    expect(res.status).toBe(201);
    expect(await res.text()).toBe(String(total));
    const expected = createHash('sha256');
    for (let i = 0; i < total / MiB; i++) expected.update(Buffer.alloc(MiB, i & 0xff));
    expect(res.headers.get('docker-content-digest')).toBe(`sha256:${expected.digest('hex')}`);
    // Loopback socket buffers hold a few MiB; everything else must wait for the reader.
    expect(aheadWhilePaused).toBeGreaterThanOrEqual(0);
    expect(aheadWhilePaused).toBeLessThan(32 * MiB);
    // Halfway, what is still held: fetch keeps every chunk of a streamed body until the request ends.
    expect(heldHalfway).toBeGreaterThanOrEqual(0);
    expect(heldHalfway).toBeLessThan(48 * MiB);
  });

  it('gives the answer of a server that refuses before reading the body, not the broken pipe', async () => {
    const url = await listen((_req, res) => {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="r"', Connection: 'close' });
      res.end('{"errors":[{"code":"UNAUTHORIZED"}]}');
    });
    const source = countingBody(64 * MiB);
    const res = await httpTransport(url, {
      method: 'PUT',
      headers: { 'Content-Length': String(64 * MiB) },
      body: source.body,
      signal: timeout(),
    });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Basic realm="r"');
    expect(await res.text()).toContain('UNAUTHORIZED');
  });

  it('answers 204 with no body', async () => {
    const url = await listen((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(204);
        res.end();
      });
    });
    const res = await httpTransport(url, {
      method: 'PUT',
      headers: {},
      body: countingBody(3 * MiB).body,
      signal: timeout(),
    });
    expect(res.status).toBe(204);
    expect(res.body).toBeNull();
  });

  it('fails when the body source fails, and the server sees a cut request', async () => {
    let serverSaw = '';
    const url = await listen((req) => {
      req.on('data', () => {});
      req.on('aborted', () => (serverSaw = 'aborted'));
      req.on('error', () => (serverSaw ||= 'error'));
    });
    async function* broken() {
      yield Buffer.alloc(MiB);
      throw new Error('compression failed');
    }
    await expect(
      httpTransport(url, {
        method: 'PUT',
        headers: { 'Content-Length': String(8 * MiB) },
        body: broken(),
        signal: timeout(),
      }),
    ).rejects.toThrow('compression failed');
    await new Promise((r) => setTimeout(r, 200));
    expect(serverSaw).not.toBe('');
  });
});

describe('httpTransport stall detection', () => {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const STALL = 400;

  it('fails a request whose answer never comes once no byte moved for the window, telling once', async () => {
    const url = await listen((req) => req.resume()); // reads the body, never answers
    let told = 0;
    const started = Date.now();
    const err = await httpTransport(url, {
      method: 'PATCH',
      headers: {},
      body: Buffer.alloc(MiB),
      signal: timeout(),
      stallMs: STALL,
      onStall: () => told++,
    }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(StallError);
    expect((err as StallError).code).toBe('ESTALL');
    expect(Date.now() - started).toBeGreaterThanOrEqual(STALL);
    expect(Date.now() - started).toBeLessThan(STALL + 1500);
    expect(told).toBe(1);
  });

  it('fails a body the server never reads (the socket buffers fill, nothing moves)', async () => {
    const url = await listen((req) => req.pause());
    const err = await httpTransport(url, {
      method: 'PUT',
      headers: { 'Content-Length': String(64 * MiB) },
      body: countingBody(64 * MiB).body,
      signal: timeout(),
      stallMs: STALL,
    }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(StallError);
  });

  it('does not count a slow source or a slow reader as a stall', async () => {
    const url = await listen((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'Content-Length': String(2 * MiB) });
        res.end(Buffer.alloc(2 * MiB, 7));
      });
    });
    async function* slowly() {
      for (let i = 0; i < 3; i++) {
        await sleep(STALL * 2); // the compressor is busy: nothing to send
        yield Buffer.alloc(1024, i);
      }
    }
    const res = await httpTransport(url, {
      method: 'PUT',
      headers: { 'Content-Length': String(3 * 1024) },
      body: slowly(),
      signal: timeout(),
      stallMs: STALL,
    });
    expect(res.status).toBe(200);
    await sleep(STALL * 2); // nobody reads the answer yet
    expect(Buffer.from(await res.arrayBuffer()).length).toBe(2 * MiB);
  });

  it('fails an answer body that stops arriving while it is read', async () => {
    const url = await listen((_req, res) => {
      res.writeHead(200, { 'Content-Length': String(MiB) });
      res.write(Buffer.alloc(1000)); // then nothing
    });
    const res = await httpTransport(url, { method: 'GET', headers: {}, signal: timeout(), stallMs: STALL });
    expect(res.status).toBe(200);
    const err = await res.arrayBuffer().catch((e: Error) => e);
    expect(err).toBeInstanceOf(StallError);
  });

  it('aborts with the signal (a timeout)', async () => {
    const url = await listen(() => {}); // never answers
    const err = await httpTransport(url, {
      method: 'GET',
      headers: {},
      signal: AbortSignal.timeout(200),
    }).catch((e: Error) => e);
    expect((err as Error).name).toBe('TimeoutError');
  });
});
