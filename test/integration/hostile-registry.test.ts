// Registries and networks that misbehave: a web page answering a manifest or blob PUT, blobs that
// vanished from the registry, a port fetch refuses, a closing PUT that keeps failing, uploads that
// hang. Real docker-registry instances, the fault-injecting proxy in front, skopeo and umoci to check.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import type http from 'node:http';
import path from 'node:path';
import { runAction, startAction, type ActionResult } from '../helpers/action.js';
import { inspect, pull, unpack } from '../helpers/image.js';
import { startProxy, type ProxiedRequest } from '../helpers/proxy.js';
import { startRegistry, type Registry } from '../helpers/registry.js';
import { cleanupAll, run, tmpDir } from '../helpers/tools.js';
import { diffTrees, snapshotTree } from '../helpers/tree.js';

let reg: Registry;
/** ~13 MiB in one layer: more than an upload chunk (8 MiB), so it goes up in PATCHes. */
let tree: string;
/** The same with an /etc, so the image gets a marker layer, in several layers. */
let etcTree: string;
/** A few KiB: one small layer, one closing PUT. */
let smallTree: string;

async function makeTree(dir: string, withEtc: boolean): Promise<void> {
  await mkdir(path.join(dir, 'data'), { recursive: true });
  await writeFile(path.join(dir, 'data', 'big'), randomBytes(9 * 1024 * 1024));
  await writeFile(path.join(dir, 'data', 'mid'), randomBytes(3 * 1024 * 1024));
  for (let i = 0; i < 40; i++)
    await writeFile(path.join(dir, 'data', `f${i}.txt`), `file ${i}\n`.repeat(300));
  if (withEtc) {
    await mkdir(path.join(dir, 'etc'));
    await writeFile(path.join(dir, 'etc', 'os-release'), 'ID=test\n');
  }
}

async function expectSameTree(ref: string, source: string): Promise<void> {
  const rootfs = await unpack(await pull(ref));
  await expectUnpacked(rootfs, source);
}

async function expectUnpacked(rootfs: string, source: string): Promise<void> {
  const a = await snapshotTree(source);
  const b = await snapshotTree(rootfs);
  a.delete('.');
  b.delete('.');
  b.delete('etc/depot-snapshot.json'); // the marker: the image's, not the tree's
  expect(diffTrees(a, b)).toEqual([]);
}

function expectOk(r: ActionResult): void {
  expect(r.errors, r.stdout).toEqual([]);
  expect(r.code).toBe(0);
}

/** A failed run: exit 1, one ::error:: line matching `message`, and no outputs. */
function expectOneError(r: ActionResult, message: RegExp): void {
  expect(r.code, r.stdout).toBe(1);
  expect(r.errors).toHaveLength(1);
  expect(r.errors[0]).toMatch(message);
  expect(r.outputs.digest).toBeUndefined();
  expect(r.outputs.tags).toBeUndefined();
}

/** An older image of another tree at `ref`: the tag a failed push must leave alone. */
async function olderImage(ref: string): Promise<string> {
  const older = await tmpDir('older');
  await writeFile(path.join(older, 'old.txt'), 'the image before\n');
  const r = await runAction({ root: older, image: ref });
  expectOk(r);
  return r.outputs.digest;
}

/** The upload session of a request (`…/blobs/uploads/<uuid>?_state=…`). */
function session(q: ProxiedRequest): string {
  return /\/blobs\/uploads\/([^/?]+)/.exec(q.path)?.[1] ?? '';
}

/** Answers the requests `match` picks with `status` and an HTML page, as a login portal would. */
function webPage(match: (req: http.IncomingMessage) => boolean, status: number) {
  return (req: http.IncomingMessage, res: http.ServerResponse): boolean => {
    if (!match(req)) return false;
    req.resume();
    res.writeHead(status, { 'Content-Type': 'text/html' });
    res.end('<!DOCTYPE html><html><body><h1>Sign in to the network</h1></body></html>');
    return true;
  };
}

beforeAll(async () => {
  reg = await startRegistry();
  tree = path.join(await tmpDir('hostile-tree'), 'root');
  await makeTree(tree, false);
  etcTree = path.join(await tmpDir('hostile-etc'), 'root');
  await makeTree(etcTree, true);
  smallTree = await tmpDir('hostile-small');
  await writeFile(path.join(smallTree, 'hello.txt'), 'hello\n'.repeat(100));
});
afterAll(cleanupAll);

describe("a success answer that is not the registry's", () => {
  const isManifestPut = (req: http.IncomingMessage) =>
    req.method === 'PUT' && req.url!.includes('/manifests/');
  const isBlobPut = (req: http.IncomingMessage) =>
    req.method === 'PUT' && req.url!.includes('/blobs/uploads/');

  it('a manifest PUT answered 200 with a web page fails the push and moves no tag', async () => {
    const before = await olderImage(`${reg.host}/hostile/portal:v1`);
    const proxy = await startProxy({ target: reg.host, intercept: webPage(isManifestPut, 200) });
    const r = await runAction({ root: tree, image: `${proxy.host}/hostile/portal:v1` });
    expectOneError(r, /hostile\/portal:v1.*(not|no ).*(hold|image)/);
    expect(r.stdout).not.toMatch(/pushed .*portal:v1/);
    expect((await inspect(`${reg.host}/hostile/portal:v1`)).Digest).toBe(before);
  });

  it('promote fails the same way, and its tag stays absent', async () => {
    const source = await runAction({ root: smallTree, image: `${reg.host}/hostile/promote-src:v1` });
    expectOk(source);
    const proxy = await startProxy({ target: reg.host, intercept: webPage(isManifestPut, 200) });
    const r = await runAction({
      mode: 'promote',
      from: `${reg.host}/hostile/promote-src:v1`,
      image: `${proxy.host}/hostile/promoted:v1`,
    });
    expectOneError(r, /hostile\/promoted:v1/);
    const probe = await run('skopeo', [
      'inspect',
      '--tls-verify=false',
      `docker://${reg.host}/hostile/promoted:v1`,
    ]);
    expect(probe.code).not.toBe(0);
  });

  it('a blob closing PUT answered 201 with a web page is not taken as stored', async () => {
    const proxy = await startProxy({ target: reg.host, intercept: webPage(isBlobPut, 201) });
    const r = await runAction({ root: smallTree, image: `${proxy.host}/hostile/blob-portal:v1` });
    // Found at the blob, not later by the registry refusing the manifest (MANIFEST_BLOB_UNKNOWN).
    expectOneError(r, /upload of sha256:[0-9a-f]{12}.*(does not have|not there)/);
    expect(proxy.requests.filter((q) => q.method === 'PUT' && q.path.includes('/manifests/'))).toEqual([]);
  });
});

describe('a blob that vanished from the registry', () => {
  /** The manifest at a tag, straight from the registry. */
  async function manifestOf(repo: string, tag: string) {
    const res = await fetch(`${reg.url}/v2/${repo}/manifests/${tag}`, {
      headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    expect(res.status).toBe(200);
    return (await res.json()) as { config: { digest: string }; layers: Array<{ digest: string }> };
  }
  /** Removed from the repository (the API; its bytes stay in the store) … */
  async function unlink(repo: string, digest: string): Promise<void> {
    const res = await fetch(`${reg.url}/v2/${repo}/blobs/${digest}`, { method: 'DELETE' });
    expect(res.status).toBe(202);
  }
  /** … or from the storage itself, as garbage collection or eviction does. */
  async function evict(digest: string): Promise<void> {
    const hex = digest.slice('sha256:'.length);
    await rm(path.join(reg.dataDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex), {
      recursive: true,
    });
  }
  async function present(repo: string, digest: string): Promise<boolean> {
    return (await fetch(`${reg.url}/v2/${repo}/blobs/${digest}`, { method: 'HEAD' })).status === 200;
  }

  it('is written again, with the layer cache and without, and the image unpacks to the tree', async () => {
    const repo = 'hostile/vanished';
    const ref = `${reg.host}/${repo}:v1`;
    const home = await tmpDir('home');
    const first = await runAction(
      { root: etcTree, image: ref, 'layer-size': '4MiB' },
      { env: { HOME: home } },
    );
    expectOk(first);
    const manifest = await manifestOf(repo, 'v1');
    const layers = manifest.layers.map((l) => l.digest);
    expect(layers.length).toBeGreaterThanOrEqual(3);

    // A layer and the config unlinked, the marker layer (the last) evicted; the cache remembers all.
    await unlink(repo, layers[0]);
    await unlink(repo, manifest.config.digest);
    await evict(layers.at(-1)!);
    const again = await runAction(
      { root: etcTree, image: ref, 'layer-size': '4MiB' },
      { env: { HOME: home } },
    );
    expectOk(again);
    expect(again.outputs.digest).toBe(first.outputs.digest);
    expect(Number(again.outputs.uploaded)).toBeGreaterThan(0);
    for (const d of [...layers, manifest.config.digest]) expect(await present(repo, d), d).toBe(true);
    expect((await inspect(ref)).Digest).toBe(first.outputs.digest);
    await expectSameTree(ref, etcTree);

    // Without the cache (a fresh HOME): the tag's own manifest is what says the layers are there.
    await evict(layers[1]);
    await unlink(repo, manifest.config.digest);
    const fresh = await runAction({ root: etcTree, image: ref, 'layer-size': '4MiB' });
    expectOk(fresh);
    expect(fresh.outputs.digest).toBe(first.outputs.digest);
    for (const d of [...layers, manifest.config.digest]) expect(await present(repo, d), d).toBe(true);
    await expectSameTree(ref, etcTree);
  });
});

describe('a registry on a port the fetch standard blocks', () => {
  /** The WHATWG "bad ports" undici's fetch refuses, that a registry may well listen on. */
  const BAD_PORTS = [6000, 6665, 6666, 6667, 6668, 6669, 6697, 10080, 5060, 5061];
  const isFree = (port: number) =>
    new Promise<boolean>((resolve) => {
      const srv = createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });

  it('takes a push, a promote and a pull', async () => {
    let blocked: Registry | undefined;
    for (const port of BAD_PORTS) {
      if (!(await isFree(port))) continue;
      blocked = await startRegistry({ port }).catch(() => undefined);
      if (blocked) break;
    }
    expect(blocked, 'no port of the bad-port list is free').toBeDefined();
    const host = blocked!.host;
    const pushed = await runAction({ root: tree, image: `${host}/hostile/port:v1` });
    expectOk(pushed);
    expect((await inspect(`${host}/hostile/port:v1`)).Digest).toBe(pushed.outputs.digest);
    await expectSameTree(`${host}/hostile/port:v1`, tree);

    const promoted = await runAction({
      mode: 'promote',
      from: `${host}/hostile/port:v1`,
      image: `${host}/hostile/port-promoted:v1`,
    });
    expectOk(promoted);
    expect((await inspect(`${host}/hostile/port-promoted:v1`)).Digest).toBe(pushed.outputs.digest);

    const output = path.join(await tmpDir('port-pull'), 'layout');
    const pulled = await runAction({ mode: 'pull', from: `${host}/hostile/port-promoted:v1`, output });
    expectOk(pulled);
    expect(pulled.outputs.digest).toBe(pushed.outputs.digest);
    await expectUnpacked(await unpack(output, 'v1'), tree);
  });
});

describe('a closing PUT that keeps failing', () => {
  it('is tried again after 0.5, 1, 2 and 4 s, then the push fails with one line and no tag moves', async () => {
    const ref = `${reg.host}/hostile/put500:v1`;
    const before = await olderImage(ref);
    const proxy = await startProxy({
      target: reg.host,
      intercept: (req, res) => {
        if (req.method !== 'PUT' || !req.url!.includes('/blobs/uploads/')) return false;
        req.resume();
        res.writeHead(500, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ errors: [{ code: 'UNKNOWN', message: 'storage backend down' }] }));
        return true;
      },
    });
    const r = await runAction({ root: smallTree, image: `${proxy.host}/hostile/put500:v1` });
    expectOneError(r, /upload of sha256:[0-9a-f]{12}.*500/);
    expect((await inspect(ref)).Digest).toBe(before);

    const puts = proxy.requests.filter((q) => q.method === 'PUT');
    expect(new Set(puts.map(session)).size).toBe(1); // one layer, one session: no restart from the tree on a 500
    const times = puts.map((q) => q.at);
    expect(times).toHaveLength(5);
    const gaps = times.slice(1).map((t, i) => t - times[i]);
    const documented = [500, 1000, 2000, 4000];
    gaps.forEach((gap, i) => {
      // ±20 % jitter, plus the "did it land, where does it stand" requests between the rounds.
      expect(gap, `wait ${i + 1}: ${gaps.join(', ')} ms`).toBeGreaterThanOrEqual(documented[i] * 0.8);
      expect(gap, `wait ${i + 1}: ${gaps.join(', ')} ms`).toBeLessThanOrEqual(documented[i] * 1.2 + 1000);
    });
    // Bounded: the session, its five rounds with their checks, and the reads before.
    expect(proxy.requests.length).toBeLessThanOrEqual(25);
  }, 120_000);
});

describe('an upload that hangs', () => {
  /** Runs the action, recording when each ::warning:: line appeared; killed after `limitMs`. */
  async function watched(inputs: Record<string, string>, env: Record<string, string>, limitMs: number) {
    const started = Date.now();
    const running = await startAction(inputs, { env });
    const warnings: Array<{ at: number; line: string }> = [];
    let pending = '';
    running.child.stdout!.on('data', (b: Buffer) => {
      const lines = (pending + b.toString()).split('\n');
      pending = lines.pop()!;
      for (const line of lines) if (line.startsWith('::warning')) warnings.push({ at: Date.now(), line });
    });
    const timer = setTimeout(() => running.child.kill('SIGKILL'), limitMs);
    const r = await running.result;
    clearTimeout(timer);
    return { r, warnings, elapsed: Date.now() - started };
  }

  it('is reported within a minute, naming the layer, the host and the wait, then retried', async () => {
    // The first PATCH is read whole and never answered: the client waits for an answer that never comes.
    const proxy = await startProxy({ target: reg.host, hang: { method: 'PATCH', count: 1, read: true } });
    const { r, warnings, elapsed } = await watched(
      { root: tree, image: `${proxy.host}/hostile/hang:v1` },
      {},
      150_000,
    );
    expectOk(r);
    const hung = proxy.requests.find((q) => q.fault === 'hang');
    expect(hung).toBeDefined();
    const stall = warnings.find((w) => /stall|no bytes/i.test(w.line));
    expect(stall, warnings.map((w) => w.line).join('\n')).toBeDefined();
    expect(stall!.line).toContain(proxy.host);
    expect(stall!.line).toMatch(/layer 1\/1/);
    expect(stall!.line).toMatch(/30 s/);
    const noticed = stall!.at - hung!.at;
    expect(noticed).toBeGreaterThanOrEqual(29_000);
    expect(noticed).toBeLessThan(45_000);
    expect(elapsed).toBeLessThan(90_000);
    expect((await inspect(`${reg.host}/hostile/hang:v1`)).Digest).toBe(r.outputs.digest);
    await expectSameTree(`${reg.host}/hostile/hang:v1`, tree);
  }, 180_000);

  it('ends the push at its deadline with one line, the tag unmoved, when every PATCH hangs', async () => {
    const ref = `${reg.host}/hostile/deadline:v1`;
    const before = await olderImage(ref);
    // Never read, never answered: the client's buffers fill and no byte moves.
    const proxy = await startProxy({ target: reg.host, hang: { method: 'PATCH', count: 1000 } });
    const { r, warnings, elapsed } = await watched(
      { root: tree, image: `${proxy.host}/hostile/deadline:v1` },
      { SNAPSHOT_STALL_SECONDS: '2', SNAPSHOT_PUSH_TIMEOUT_SECONDS: '12' },
      60_000,
    );
    expectOneError(r, /12 s.*SNAPSHOT_PUSH_TIMEOUT_SECONDS/);
    expect(warnings.some((w) => /stall|no bytes/i.test(w.line) && w.line.includes('2 s'))).toBe(true);
    expect(elapsed).toBeLessThan(12_000 + 8_000);
    expect((await inspect(ref)).Digest).toBe(before);
  }, 90_000);
});
