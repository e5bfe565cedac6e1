// Acceptance for base images: the snapshot is the base's layers, untouched and in order, then the new
// ones. Base layers are mounted from a sibling repository, copied from another registry, or (dry run)
// written into the layout; Docker schema 2 and multi-platform bases work; the config and history are
// inherited. Bases are small trees pushed by the action itself, so every test stays fast.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { runAction, type ActionResult } from '../helpers/action.js';
import { inspect, pull, pushLayout, unpack } from '../helpers/image.js';
import { startProxy, type Proxy } from '../helpers/proxy.js';
import { startRegistry, type Registry } from '../helpers/registry.js';
import { check, cleanupAll, freePort, tmpDir } from '../helpers/tools.js';
import { diffTrees, snapshotTree, type TreeSnapshot } from '../helpers/tree.js';

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
const DOCKER_V2S2 = 'application/vnd.docker.distribution.manifest.v2+json';
const BASE_NAME = 'org.opencontainers.image.base.name';
const BASE_DIGEST = 'org.opencontainers.image.base.digest';

interface RawManifest {
  mediaType: string;
  layers: Array<{ mediaType: string; digest: string; size: number }>;
  annotations?: Record<string, string>;
}
interface ImageConfig {
  config?: Record<string, unknown>;
  history?: Array<Record<string, unknown>>;
}

let registry: Registry; // "A": every target lives here
let proxy: Proxy; // counting proxy in front of A
let baseTree: string; // three ~800 KiB subtrees: three base layers with layer-size 1MiB
let newTree: string; // what the derived images add
let baseRef: string;
let baseDigest: string;
let baseLayers: string[];

function expectOk(r: ActionResult): void {
  expect(r.errors).toEqual([]);
  expect(r.code, r.stdout.slice(-2000) + r.stderr.slice(-2000)).toBe(0);
}

/** A directory holding `files` (relative path → content). */
async function makeTree(prefix: string, files: Record<string, string | Buffer>): Promise<string> {
  const dir = await tmpDir(prefix);
  for (const [rel, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
    await writeFile(path.join(dir, rel), content);
  }
  return dir;
}

/** Pushes a tree as an image with the action itself; returns its layer digests. */
async function pushTree(root: string, image: string): Promise<string[]> {
  expectOk(await runAction({ root, image, 'layer-size': '1MiB' }));
  return (await inspect(image)).Layers;
}

async function skopeo(...args: string[]): Promise<string> {
  return (await check('skopeo', args)).stdout;
}
async function rawManifest(ref: string): Promise<RawManifest> {
  return JSON.parse(await skopeo('inspect', '--raw', '--tls-verify=false', '--no-creds', `docker://${ref}`));
}
async function imageConfig(ref: string): Promise<ImageConfig> {
  return JSON.parse(
    await skopeo('inspect', '--config', '--tls-verify=false', '--no-creds', `docker://${ref}`),
  );
}

/** Snapshot without the root entry (each layer's own "." wins) and without directory times. */
async function comparable(root: string): Promise<TreeSnapshot> {
  const snap = await snapshotTree(root);
  snap.delete('.');
  return snap;
}

/** The unpacked rootfs equals the given trees laid over each other, in order. */
async function expectTreeOf(rootfs: string, ...trees: string[]): Promise<void> {
  const expected = await tmpDir('expected');
  for (const t of trees) await check('cp', ['-a', `${t}/.`, expected]);
  const diff = diffTrees(await comparable(expected), await comparable(rootfs), { ignoreDirMtime: true });
  expect(diff).toEqual([]);
}

/** Runs the action adding newTree on top of `base` into `image`; returns the pushed layers. */
async function derive(base: string, image: string): Promise<{ r: ActionResult; layers: string[] }> {
  const r = await runAction({ root: newTree, image, 'base-image': base });
  expectOk(r);
  const layers = (await inspect(image)).Layers;
  expect(layers.length).toBeGreaterThan(0);
  return { r, layers };
}

/** PUT a manifest or index into the open registry A. */
async function putManifest(repo: string, tag: string, body: object, mediaType: string): Promise<void> {
  const res = await fetch(`${registry.url}/v2/${repo}/manifests/${tag}`, {
    method: 'PUT',
    headers: { 'Content-Type': mediaType },
    body: JSON.stringify(body),
  });
  expect(res.status, await res.text()).toBe(201);
}

/** Descriptor of a tag's manifest in A, as an index entry. */
async function descriptorOf(repo: string, tag: string, platform: { os: string; architecture: string }) {
  const res = await fetch(`${registry.url}/v2/${repo}/manifests/${tag}`, {
    headers: { Accept: OCI_MANIFEST },
  });
  const bytes = Buffer.from(await res.arrayBuffer());
  expect(res.headers.get('content-type')).toBe(OCI_MANIFEST);
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  return { mediaType: OCI_MANIFEST, digest, size: bytes.length, platform };
}

beforeAll(async () => {
  registry = await startRegistry();
  proxy = await startProxy({ target: registry.host });
  baseTree = await makeTree('base', {
    'alpha/data.bin': randomBytes(800 * 1024),
    'alpha/readme.txt': 'alpha\n',
    'beta/data.bin': randomBytes(800 * 1024),
    'gamma/data.bin': randomBytes(800 * 1024),
    'gamma/deep/note.txt': 'gamma\n',
  });
  newTree = await makeTree('new', { 'added/hello.txt': 'hello\n', 'top.txt': 'top\n' });
  // Pushed through the proxy: the same repository as baseRef, on the same registry.
  baseLayers = await pushTree(baseTree, `${proxy.host}/base/tree:v1`);
  expect(baseLayers.length).toBeGreaterThanOrEqual(3);
  baseRef = `${registry.host}/base/tree:v1`;
  baseDigest = (await inspect(baseRef)).Digest;
});
afterAll(cleanupAll);

describe('base image', () => {
  it('mounts the base layers from another repository of the same registry, uploading none', async () => {
    const before = proxy.requests.length;
    const image = `${proxy.host}/derived/one:v1`;
    const { r, layers } = await derive(`${proxy.host}/base/tree:v1`, image);
    expect(layers.slice(0, baseLayers.length)).toEqual(baseLayers);
    expect(layers.length).toBeGreaterThan(baseLayers.length);

    const reqs = proxy.requests.slice(before).map((q) => ({ ...q, url: new URL(q.path, 'http://x') }));
    for (const digest of baseLayers) {
      const mounts = reqs.filter(
        (q) =>
          q.method === 'POST' &&
          q.url.pathname === '/v2/derived/one/blobs/uploads/' &&
          q.url.searchParams.get('mount') === digest &&
          q.url.searchParams.get('from') === 'base/tree',
      );
      expect(
        mounts.map((q) => q.status),
        `mount of ${digest}`,
      ).toEqual([201]);
    }
    // Every upload session that carried bytes (PATCH) or finished (PUT ?digest=) was for a new blob.
    const finished = new Map<string, string>(); // upload path → digest
    for (const q of reqs) {
      if (q.method === 'PUT' && q.url.searchParams.has('digest'))
        finished.set(q.url.pathname, q.url.searchParams.get('digest')!);
    }
    expect([...finished.values()].filter((d) => baseLayers.includes(d))).toEqual([]);
    for (const q of reqs.filter((x) => x.method === 'PATCH')) {
      expect(baseLayers).not.toContain(finished.get(q.url.pathname));
    }
    const baseBytes = (await rawManifest(baseRef)).layers.reduce((n, l) => n + l.size, 0);
    expect(Number(r.outputs.uploaded)).toBeLessThan(baseBytes / 10);
  });

  it('copies the base layers from another registry, and the result unpacks to base + new files', async () => {
    const other = await startRegistry();
    const otherTree = await makeTree('other', {
      'opt/one.bin': randomBytes(800 * 1024),
      'srv/two.bin': randomBytes(800 * 1024),
    });
    const otherLayers = await pushTree(otherTree, `${other.host}/base/elsewhere:v1`);
    const image = `${registry.host}/derived/two:v1`;
    const { layers } = await derive(`${other.host}/base/elsewhere:v1`, image);
    expect(layers.slice(0, otherLayers.length)).toEqual(otherLayers);
    await other.stop(); // A never had these blobs: the unpack below proves they were copied
    await expectTreeOf(await unpack(await pull(image)), otherTree, newTree);
  });

  it('takes a Docker schema 2 base and pushes an OCI manifest with OCI layer types', async () => {
    const dockerRef = `${registry.host}/base/docker:v1`;
    await skopeo(
      'copy',
      '--format',
      'v2s2',
      '--src-tls-verify=false',
      '--dest-tls-verify=false',
      '--src-no-creds',
      '--dest-no-creds',
      `docker://${baseRef}`,
      `docker://${dockerRef}`,
    );
    const docker = await rawManifest(dockerRef);
    expect(docker.mediaType).toBe(DOCKER_V2S2);
    const dockerLayers = docker.layers.map((l) => l.digest);

    const image = `${registry.host}/derived/three:v1`;
    const { layers } = await derive(dockerRef, image);
    expect(layers.slice(0, dockerLayers.length)).toEqual(dockerLayers);
    const raw = await rawManifest(image);
    expect(raw.mediaType).toBe(OCI_MANIFEST);
    expect(raw.layers.slice(0, dockerLayers.length).map((l) => l.mediaType)).toEqual(
      dockerLayers.map(() => OCI_GZIP),
    );
    await expectTreeOf(await unpack(await pull(image)), baseTree, newTree);
  });

  it('picks the linux/amd64 entry of an index, and names the platform when there is none', async () => {
    // A second image in the same repository stands in for the s390x build, listed first.
    const s390xLayers = await pushTree(
      await makeTree('s390x', { 'arch.txt': 's390x\n' }),
      `${registry.host}/base/tree:s390x`,
    );
    const amd64 = await descriptorOf('base/tree', 'v1', { os: 'linux', architecture: 'amd64' });
    const s390x = await descriptorOf('base/tree', 's390x', { os: 'linux', architecture: 's390x' });
    const index = (manifests: object[]) => ({ schemaVersion: 2, mediaType: OCI_INDEX, manifests });
    await putManifest('base/tree', 'multi', index([s390x, amd64]), OCI_INDEX);
    await putManifest('base/tree', 's390x-only', index([s390x]), OCI_INDEX);

    const { layers } = await derive(`${registry.host}/base/tree:multi`, `${registry.host}/derived/four:v1`);
    expect(layers.slice(0, baseLayers.length)).toEqual(baseLayers);
    expect(layers).not.toContain(s390xLayers[0]);

    const r = await runAction({
      root: newTree,
      image: `${registry.host}/derived/four:v2`,
      'base-image': `${registry.host}/base/tree:s390x-only`,
    });
    expect(r.code).toBe(1);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatch(/base-image/);
    expect(r.errors[0]).toMatch(/linux\/amd64/);
  });

  it('takes a base pinned by digest and records that digest', async () => {
    const pinned = `${registry.host}/base/tree@${baseDigest}`;
    const image = `${registry.host}/derived/five:v1`;
    const { layers } = await derive(pinned, image);
    expect(layers.slice(0, baseLayers.length)).toEqual(baseLayers);
    const { annotations } = await rawManifest(image);
    expect(annotations?.[BASE_DIGEST]).toBe(baseDigest);
    expect(annotations?.[BASE_NAME]).toContain(`${registry.host}/base/tree`);
  });

  it('dry run: the layout holds every base layer and unpacks to base + new files alone', async () => {
    const output = path.join(await tmpDir('layout'), 'out');
    const r = await runAction({
      root: newTree,
      image: `${registry.host}/derived/dry:v1`,
      'base-image': baseRef,
      'dry-run': 'true',
      output,
    });
    expectOk(r);
    for (const digest of baseLayers) {
      const blob = path.join(output, 'blobs', 'sha256', digest.slice('sha256:'.length));
      expect(existsSync(blob), `${digest} in the layout`).toBe(true);
      expect(
        `sha256:${createHash('sha256')
          .update(await readFile(blob))
          .digest('hex')}`,
      ).toBe(digest);
    }
    const index = JSON.parse(await readFile(path.join(output, 'index.json'), 'utf8'));
    const tag: string = index.manifests[0].annotations['org.opencontainers.image.ref.name'];
    await expectTreeOf(await unpack(output, tag), baseTree, newTree);
    const res = await fetch(`${registry.url}/v2/derived/dry/manifests/v1`, { method: 'HEAD' });
    expect(res.status).toBe(404); // nothing pushed
  });

  it("inherits the base's Env, Cmd, WorkingDir, Labels and history", async () => {
    const layout = path.join(await tmpDir('umoci'), 'L');
    const bundle = path.join(await tmpDir('bundle'), 'b');
    const umoci = (...args: string[]) => check('umoci', args);
    await umoci('init', '--layout', layout);
    await umoci('new', '--image', `${layout}:t`);
    await umoci('unpack', '--image', `${layout}:t`, bundle);
    await writeFile(path.join(bundle, 'rootfs', 'from-umoci'), 'x\n');
    await umoci('repack', '--image', `${layout}:t`, bundle);
    await umoci(
      'config',
      '--image',
      `${layout}:t`,
      '--config.env',
      'FOO=bar',
      '--config.cmd',
      '/bin/sh',
      '--config.workingdir',
      '/srv',
      '--config.label',
      'a=b',
    );
    const cfgRef = `${registry.host}/base/cfg:v1`;
    await pushLayout(layout, 't', cfgRef);
    const base = await imageConfig(cfgRef);
    expect(base.config).toMatchObject({
      Env: expect.arrayContaining(['FOO=bar']),
      Cmd: ['/bin/sh'],
      WorkingDir: '/srv',
      Labels: { a: 'b' },
    });
    expect(base.history?.length).toBeGreaterThan(0);

    const image = `${registry.host}/derived/seven:v1`;
    await derive(cfgRef, image);
    const derived = await imageConfig(image);
    // Env is the base's with the job's PATH (persist-env); everything else exactly the base's.
    const baseEnv = base.config!.Env as string[];
    const jobPath = `PATH=${process.env.PATH}`;
    expect(derived.config).toEqual({
      ...base.config,
      Env: baseEnv.some((e) => e.startsWith('PATH='))
        ? baseEnv.map((e) => (e.startsWith('PATH=') ? jobPath : e))
        : [...baseEnv, jobPath],
    });
    expect(derived.history?.slice(0, base.history!.length)).toEqual(base.history);
    expect(derived.history!.length).toBeGreaterThan(base.history!.length);
  });

  it('fails with one clear line for a missing base or an unreachable registry', async () => {
    const missing = await runAction({
      root: newTree,
      image: `${registry.host}/derived/eight:v1`,
      'base-image': `${registry.host}/base/nope:v1`,
    });
    expect(missing.code).toBe(1);
    expect(missing.errors).toHaveLength(1);
    expect(missing.errors[0]).toMatch(/base-image/);
    expect(missing.errors[0]).toMatch(/not found/);

    const dead = `127.0.0.1:${await freePort()}`;
    const refused = await runAction({
      root: newTree,
      image: `${registry.host}/derived/eight:v1`,
      'base-image': `${dead}/base/tree:v1`,
    });
    expect(refused.code).toBe(1);
    expect(refused.errors).toHaveLength(1);
    expect(refused.errors[0]).toMatch(/base-image/);
    expect(refused.errors[0]).toContain(dead);
    expect(refused.errors[0]).toMatch(/refused/);
  });
});
