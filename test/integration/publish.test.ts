// Acceptance for publishing one image to several repositories and registries in one run: two real
// registries (each with its own credentials: the inputs for the first, the Docker config for the
// other), two repositories in one of them, behind counting proxies; one run of each of snapshot and
// promote reaches every tag with one digest, mounting within a registry; a registry failed entirely
// by a proxy leaves the other one complete and its own tag where it was.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import path from 'node:path';
import { runAction, runCli, type ActionResult } from '../helpers/action.js';
import { inspect, pull, unpack, type Creds } from '../helpers/image.js';
import { startProxy, type Proxy, type ProxiedRequest } from '../helpers/proxy.js';
import { referrersByTag } from '../helpers/referrers.js';
import { startRegistry, type Registry } from '../helpers/registry.js';
import { check, cleanupAll, tmpDir } from '../helpers/tools.js';
import { diffTrees, snapshotTree } from '../helpers/tree.js';

const MARKER = 'etc/depot-snapshot.json';
const credsA: Creds = { user: 'alice', pass: 'alice-secret-pass' };
const credsB: Creds = { user: 'bob', pass: 'bob-secret-pass' };

let regA: Registry;
let regB: Registry;
let proxyA: Proxy;
let proxyB: Proxy;
let tree: string;
let home: string;

beforeAll(async () => {
  regA = await startRegistry({ auth: 'htpasswd', users: [credsA] });
  regB = await startRegistry({ auth: 'htpasswd', users: [credsB] });
  proxyA = await startProxy({ target: regA.host });
  proxyB = await startProxy({ target: regB.host });
  // A system (it has /etc, so the image carries a marker) with two layers' worth of content.
  tree = path.join(await tmpDir('publish-tree'), 'root');
  await mkdir(path.join(tree, 'etc'), { recursive: true });
  await mkdir(path.join(tree, 'opt', 'tool'), { recursive: true });
  await writeFile(path.join(tree, 'etc', 'tool.conf'), 'setting = 1\n');
  await writeFile(path.join(tree, 'opt', 'tool', 'a.bin'), randomBytes(3 * 1024 * 1024));
  await writeFile(path.join(tree, 'opt', 'tool', 'b.bin'), randomBytes(3 * 1024 * 1024));
  // Registry B's credentials come from the Docker config: the inputs are for the first registry.
  home = await tmpDir('home');
  await mkdir(path.join(home, '.docker'));
  const auth = Buffer.from(`${credsB.user}:${credsB.pass}`).toString('base64');
  await writeFile(
    path.join(home, '.docker', 'config.json'),
    JSON.stringify({ auths: { [proxyB.host]: { auth } } }),
  );
});
afterAll(cleanupAll);

function credsOf(ref: string): Creds {
  return ref.startsWith(proxyA.host) || ref.startsWith(regA.host) ? credsA : credsB;
}

/** The digest each reference holds, read by skopeo. */
async function digests(refs: string[]): Promise<string[]> {
  return Promise.all(refs.map(async (r) => (await inspect(r, credsOf(r))).Digest));
}

/** The blob digests uploaded (closing `PUT …?digest=`), one entry per upload that succeeded. */
function uploads(requests: ProxiedRequest[]): string[] {
  return requests
    .filter((q) => q.method === 'PUT' && q.path.includes('/blobs/uploads/') && q.status === 201)
    .map((q) => decodeURIComponent(/[?&]digest=([^&]+)/.exec(q.path)?.[1] ?? ''));
}

/** The blobs mounted into `repository` from `from` (`POST …/blobs/uploads/?mount=…&from=…` → 201). */
function mounts(requests: ProxiedRequest[], repository: string, from: string): string[] {
  return requests
    .filter(
      (q) =>
        q.method === 'POST' &&
        q.status === 201 &&
        q.path.startsWith(`/v2/${repository}/blobs/uploads/?mount=`) &&
        q.path.includes(`from=${encodeURIComponent(from)}`),
    )
    .map((q) => decodeURIComponent(/mount=([^&]+)/.exec(q.path)![1]));
}

/** Every blob of the image at `ref`: config and layers. */
async function blobsOf(ref: string): Promise<string[]> {
  const r = await check('skopeo', [
    'inspect',
    '--raw',
    '--tls-verify=false',
    '--creds',
    `${credsOf(ref).user}:${credsOf(ref).pass}`,
    `docker://${ref}`,
  ]);
  const m = JSON.parse(r.stdout) as { config: { digest: string }; layers: Array<{ digest: string }> };
  return [m.config.digest, ...m.layers.map((l) => l.digest)];
}

/**
 * The image's blobs and those of the artifacts listed as its referrers (the SBOM and provenance: their
 * configs and documents), found by the referrers tag schema, each once.
 */
async function blobsWithReferrers(ref: string, digest: string): Promise<string[]> {
  const [host, ...rest] = ref.replace(/:[^:/]+$/, '').split('/');
  const found = await referrersByTag(host, rest.join('/'), digest, credsOf(ref));
  expect(new Set(found.map((f) => f.artifactType))).toEqual(
    new Set(['application/vnd.cyclonedx+json', 'application/vnd.in-toto+json']),
  );
  const artifacts = found.flatMap((f) => [
    f.manifest.config.digest,
    ...f.manifest.layers.map((l) => l.digest),
  ]);
  return [...new Set([...(await blobsOf(ref)), ...artifacts])].sort();
}

/** umoci unpack of `ref` equals the tree, but for the marker, which is returned. */
async function expectSameTree(ref: string): Promise<Record<string, unknown>> {
  const rootfs = await unpack(await pull(ref, { creds: credsOf(ref) }));
  const marker = JSON.parse(await readFile(path.join(rootfs, MARKER), 'utf8')) as Record<string, unknown>;
  const a = await snapshotTree(tree);
  const b = await snapshotTree(rootfs);
  for (const key of ['.', MARKER]) b.delete(key);
  a.delete('.');
  expect(diffTrees(a, b)).toEqual([]);
  return marker;
}

function snapshotTo(refs: string[], metadataFile: string, env: Record<string, string> = {}) {
  return runAction(
    {
      root: tree,
      image: refs.join('\n'),
      username: credsA.user,
      password: credsA.pass,
      'layer-size': '2MiB',
      'metadata-file': metadataFile,
    },
    { env: { HOME: home, ...env } },
  );
}

function expectOk(r: ActionResult): void {
  expect(r.errors, r.stdout).toEqual([]);
  expect(r.code).toBe(0);
}

describe('publishing to several registries and repositories', () => {
  it('one snapshot reaches four tags in two registries with one digest, mounting within a registry', async () => {
    proxyA.requests.length = 0;
    proxyB.requests.length = 0;
    const refs = [
      `${proxyA.host}/one/app:v1`,
      `${proxyA.host}/two/app:v1`,
      `${proxyB.host}/app:v1`,
      `${proxyB.host}/app:latest`,
    ];
    const meta = path.join(await tmpDir('meta'), 'snapshot.json');
    const r = await snapshotTo(refs, meta);
    expectOk(r);
    const digest = r.outputs.digest;
    expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(await digests(refs)).toEqual(refs.map(() => digest));
    expect(r.outputs.image).toBe(`${proxyA.host}/one/app@${digest}`);
    expect(r.outputs.images).toBe(refs.join(','));
    expect(r.outputs.tags).toBe('v1,latest');
    expect(JSON.parse(await readFile(meta, 'utf8')).images).toEqual(refs);

    // Each blob (the image's, its attestations') reached each registry once: uploaded to one
    // repository of A, mounted into the other.
    const blobs = await blobsWithReferrers(refs[0], digest);
    for (const requests of [proxyA.requests, proxyB.requests])
      expect(uploads(requests).sort()).toEqual(blobs);
    expect(mounts(proxyA.requests, 'two/app', 'one/app').sort()).toEqual(blobs);
    expect(proxyB.requests.filter((q) => q.path.includes('mount='))).toEqual([]);

    // The image is whole in either registry; its marker names every repository, the same everywhere.
    const marker = await expectSameTree(refs[2]);
    expect(marker.places).toEqual([
      { repository: `${proxyA.host}/one/app`, tag: 'v1' },
      { repository: `${proxyA.host}/two/app`, tag: 'v1' },
      { repository: `${proxyB.host}/app`, tag: 'v1' },
    ]);
    expect(marker.repository).toBe(`${proxyA.host}/one/app`);
  });

  it('max-age skips only when every tag of every registry holds one young image', async () => {
    const refs = [`${proxyA.host}/one/app:v1`, `${proxyA.host}/two/app:v1`, `${proxyB.host}/app:latest`];
    const meta = path.join(await tmpDir('meta'), 'skip.json');
    const skip = await runAction(
      {
        root: tree,
        image: refs.join('\n'),
        username: credsA.user,
        password: credsA.pass,
        'max-age': '3650d',
        'metadata-file': meta,
      },
      { env: { HOME: home } },
    );
    expectOk(skip);
    expect(skip.outputs.skipped).toBe('true');
    expect(skip.outputs.image).toBe(`${proxyA.host}/one/app@${(await inspect(refs[0], credsA)).Digest}`);
    // One more tag, in the second registry, that holds nothing yet: the snapshot is made.
    const more = [...refs, `${proxyB.host}/app:new`];
    const made = await runAction(
      {
        root: tree,
        image: more.join('\n'),
        username: credsA.user,
        password: credsA.pass,
        'max-age': '3650d',
        'metadata-file': meta,
      },
      { env: { HOME: home } },
    );
    expectOk(made);
    expect(made.outputs.skipped).toBe('false');
    expect(await digests(more)).toEqual(more.map(() => made.outputs.digest));
  });

  it("a snapshot of a sandbox started from the image reads its base in its own target's registry", async () => {
    const rootfs = await unpack(await pull(`${proxyB.host}/app:v1`, { creds: credsB }));
    await writeFile(path.join(rootfs, 'etc', 'added.conf'), 'added later\n');
    proxyA.requests.length = 0;
    proxyB.requests.length = 0;
    const next = `${proxyB.host}/next/app:v1`;
    const r = await runAction({ root: rootfs, image: next }, { env: { HOME: home } });
    expectOk(r);
    expect(r.stdout).toContain(`base image from the marker: ${proxyB.host}/app:v1`);
    // Nothing read from the first registry; the base layers mounted within the second.
    expect(proxyA.requests).toEqual([]);
    const base = (await blobsOf(`${proxyB.host}/app:v1`)).length - 2; // less the config and marker
    expect(mounts(proxyB.requests, 'next/app', 'app').length).toBe(base);

    // To both registries: the base is read in the first target's, and each registry mounts the base
    // layers from the place its marker names there; none is sent.
    proxyA.requests.length = 0;
    proxyB.requests.length = 0;
    const both = [`${proxyA.host}/again/app:v1`, `${proxyB.host}/again/app:v1`];
    const again = await runAction(
      { root: rootfs, image: both.join('\n'), username: credsA.user, password: credsA.pass },
      { env: { HOME: home } },
    );
    expectOk(again);
    expect(again.stdout).toContain(`base image from the marker: ${proxyA.host}/one/app:v1`);
    expect(await digests(both)).toEqual([again.outputs.digest, again.outputs.digest]);
    expect(mounts(proxyA.requests, 'again/app', 'one/app').length).toBe(base);
    expect(mounts(proxyB.requests, 'again/app', 'app').length).toBe(base);
    const baseLayers = (await blobsOf(`${proxyB.host}/app:v1`)).slice(1, -1);
    for (const requests of [proxyA.requests, proxyB.requests])
      expect(uploads(requests).filter((d) => baseLayers.includes(d))).toEqual([]);
  });

  it('one promote --to ×4 reaches four tags in two registries with one digest, mounting within a registry', async () => {
    const source = `${proxyA.host}/one/app:v1`;
    const digest = (await inspect(source, credsA)).Digest;
    proxyA.requests.length = 0;
    proxyB.requests.length = 0;
    const refs = [
      `${proxyA.host}/three/app:v2`,
      `${proxyB.host}/promoted/app:v2`,
      `${proxyA.host}/four/app:v2`,
      `${proxyB.host}/promoted/app:stable`,
    ];
    // The credential flags are for A, the first --to; B's come from the Docker config.
    const res = await runCli(
      [
        'promote',
        '--from',
        source,
        ...refs.flatMap((ref) => ['--to', ref]),
        '--username',
        credsA.user,
        '--password',
        credsA.pass,
      ],
      { env: { PATH: process.env.PATH ?? '', HOME: home } },
    );
    expect(res.code, res.stdout + res.stderr).toBe(0);
    expect(res.stdout).toContain(`digest=${digest}`);
    expect(res.stdout).toContain(`images=${[refs[0], refs[2], refs[1], refs[3]].join(',')}`);
    expect(await digests(refs)).toEqual(refs.map(() => digest));
    // Within A every blob (the image's, its attestations') is mounted (from the source, then from the
    // first repository), none sent; B gets each blob copied once.
    const blobs = await blobsWithReferrers(source, digest);
    expect(mounts(proxyA.requests, 'three/app', 'one/app').sort()).toEqual(blobs);
    expect(mounts(proxyA.requests, 'four/app', 'three/app').sort()).toEqual(blobs);
    expect(uploads(proxyA.requests)).toEqual([]);
    expect(uploads(proxyB.requests).sort()).toEqual(blobs);
  });

  // Failed from its first request (dropped when opened), or only once a blob's bytes flow into it
  // (dropped from the stream every layer goes to at once, the others going on).
  it.each([
    ['every request', 'down', (_req: IncomingMessage) => true],
    [
      'blob uploads only',
      'uploads',
      (req: IncomingMessage) =>
        req.method === 'PATCH' || (req.method === 'PUT' && req.url!.includes('/blobs/')),
    ],
  ])(
    'a registry failing %s leaves the other complete, its own tag unmoved, and names it',
    async (_, repo, fails) => {
      // B already holds an image at the tag the failing run aims at.
      const previousTree = await tmpDir('previous');
      await writeFile(path.join(previousTree, 'old.txt'), 'the previous image\n');
      const seed = await runCli(['--root', previousTree, '--image', `${proxyB.host}/${repo}/app:v3`], {
        env: { PATH: process.env.PATH ?? '', HOME: home },
      });
      expect(seed.code, seed.stdout + seed.stderr).toBe(0);
      const previous = (await inspect(`${regB.host}/${repo}/app:v3`, credsB)).Digest;

      // Registry B, through a proxy that answers every request 503.
      const failing = await startProxy({
        target: regB.host,
        intercept: (req, res) => {
          if (!fails(req)) return false;
          req.resume();
          res.writeHead(503, { 'Content-Type': 'application/json' });
          res.end('{"errors":[{"code":"UNAVAILABLE","message":"injected"}]}');
          return true;
        },
      });
      // B's credentials are found under the failing proxy's address too.
      const auth = Buffer.from(`${credsB.user}:${credsB.pass}`).toString('base64');
      await writeFile(
        path.join(home, '.docker', 'config.json'),
        JSON.stringify({ auths: { [proxyB.host]: { auth }, [failing.host]: { auth } } }),
      );
      const refs = [
        `${proxyA.host}/one/app:v3`,
        `${failing.host}/${repo}/app:v3`,
        `${proxyA.host}/two/app:v3`,
      ];
      const meta = path.join(await tmpDir('meta'), 'partial.json');
      const r = await snapshotTo(refs, meta, { SNAPSHOT_STALL_SECONDS: '5' });
      expect(r.code).toBe(1);
      expect(r.errors).toHaveLength(1);
      expect(r.stdout).toMatch(
        new RegExp(`::warning::registry ${failing.host} failed, going on with the others`),
      );
      expect(r.errors[0]).toMatch(
        new RegExp(
          `^::error::not written: ${failing.host}/${repo}/app:v3 \\(registry ${failing.host}: .*503`,
        ),
      );
      // Registry A is complete and correct; the outputs and metadata list only what was written.
      const digest = r.outputs.digest;
      expect(await digests([refs[0], refs[2]])).toEqual([digest, digest]);
      expect(r.outputs.images).toBe(`${refs[0]},${refs[2]}`);
      expect(r.outputs.image).toBe(`${proxyA.host}/one/app@${digest}`);
      expect(JSON.parse(await readFile(meta, 'utf8')).images).toEqual([refs[0], refs[2]]);
      await expectSameTree(refs[2]);
      // B's tag did not move.
      expect((await inspect(`${regB.host}/${repo}/app:v3`, credsB)).Digest).toBe(previous);
      expect(failing.requests.filter((q) => q.method === 'PUT' && q.path.includes('/manifests/'))).toEqual(
        [],
      );
    },
  );
});

describe('promote to several registries, one failing', () => {
  it('writes the working registry, leaves the failing one unmoved, and names what it did not write', async () => {
    const source = `${proxyA.host}/promote-src/app:v1`;
    const made = await runCli(
      ['--root', tree, '--image', source, '--username', credsA.user, '--password', credsA.pass],
      { env: { PATH: process.env.PATH ?? '', HOME: home } },
    );
    expect(made.code, made.stdout + made.stderr).toBe(0);
    const digest = (await inspect(source, credsA)).Digest;
    const previousTree = await tmpDir('previous');
    await writeFile(path.join(previousTree, 'old.txt'), 'the previous promoted image\n');
    const seed = await runCli(['--root', previousTree, '--image', `${proxyB.host}/promoted-kept/app:v5`], {
      env: { PATH: process.env.PATH ?? '', HOME: home },
    });
    expect(seed.code, seed.stdout + seed.stderr).toBe(0);
    const previous = (await inspect(`${regB.host}/promoted-kept/app:v5`, credsB)).Digest;
    const failing = await startProxy({
      target: regB.host,
      intercept: (req, res) => {
        req.resume();
        res.writeHead(503, { 'Content-Type': 'application/json' });
        res.end('{"errors":[{"code":"UNAVAILABLE","message":"injected"}]}');
        return true;
      },
    });
    const refs = [`${proxyA.host}/five/app:v5`, `${failing.host}/promoted-kept/app:v5`];
    const meta = path.join(await tmpDir('meta'), 'promote.json');
    const r = await runAction(
      {
        mode: 'promote',
        from: source,
        image: refs.join('\n'),
        username: credsA.user,
        password: credsA.pass,
        'metadata-file': meta,
      },
      { env: { HOME: home } },
    );
    expect(r.code).toBe(1);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatch(
      new RegExp(`^::error::not written: ${refs[1]} \\(registry ${failing.host}: .*503`),
    );
    expect(r.outputs.digest).toBe(digest);
    expect(r.outputs.images).toBe(refs[0]);
    expect(JSON.parse(await readFile(meta, 'utf8')).images).toEqual([refs[0]]);
    expect((await inspect(refs[0], credsA)).Digest).toBe(digest);
    expect((await inspect(`${regB.host}/promoted-kept/app:v5`, credsB)).Digest).toBe(previous);
  });
});
