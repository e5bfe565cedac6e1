// Acceptance for build once, use many times: a snapshot pushed to staging, promoted to a second
// registry (other credentials) and to another repository of the first (mounted), pulled back into a
// layout; and the metadata file checked against its published schema.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { runAction, type ActionResult } from '../helpers/action.js';
import { inspect, unpack } from '../helpers/image.js';
import { startProxy } from '../helpers/proxy.js';
import { startRegistry, type Registry } from '../helpers/registry.js';
import { cleanupAll, tmpDir } from '../helpers/tools.js';
import { diffTrees, snapshotTree } from '../helpers/tree.js';

let staging: Registry;
let production: Registry;
let tree: string;
let home: string;

function expectOk(r: ActionResult): void {
  expect(r.errors, r.stdout).toEqual([]);
  expect(r.code).toBe(0);
}

async function validate(file: string): Promise<Record<string, unknown>> {
  const schema = JSON.parse(await readFile('metadata.schema.json', 'utf8'));
  const data = JSON.parse(await readFile(file, 'utf8'));
  const ajv = new Ajv2020({ allErrors: true });
  const ok = ajv.validate(schema, data);
  expect(ajv.errors ?? [], JSON.stringify(data)).toEqual([]);
  expect(ok).toBe(true);
  return data;
}

beforeAll(async () => {
  staging = await startRegistry();
  production = await startRegistry({ auth: 'htpasswd', users: [{ user: 'prod', pass: 'prod-secret-pass' }] });
  tree = path.join(await tmpDir('tree'), 'root');
  await mkdir(path.join(tree, 'a'), { recursive: true });
  await writeFile(path.join(tree, 'a', 'blob'), randomBytes(2 * 1024 * 1024));
  await writeFile(path.join(tree, 'hello.txt'), 'hello\n');
  // The production registry's credentials come from the Docker config, as a push would find them.
  home = await tmpDir('home');
  await mkdir(path.join(home, '.docker'));
  const auth = Buffer.from('prod:prod-secret-pass').toString('base64');
  await writeFile(
    path.join(home, '.docker', 'config.json'),
    JSON.stringify({ auths: { [production.host]: { auth } } }),
  );
});
afterAll(cleanupAll);

describe('promote and pull', () => {
  it('promotes one digest to another registry and another repository, and pulls it back', async () => {
    const proxy = await startProxy({ target: staging.host });
    const metaDir = await tmpDir('meta');
    const snap = await runAction(
      {
        root: tree,
        image: `${proxy.host}/staging/app:build-1`,
        'metadata-file': path.join(metaDir, 'snapshot.json'),
      },
      { env: { HOME: home } },
    );
    expectOk(snap);
    const digest = snap.outputs.digest;
    const meta = await validate(path.join(metaDir, 'snapshot.json'));
    expect(meta.digest).toBe(digest);
    expect(meta.operation).toBe('snapshot');
    expect((meta.layers as unknown[]).length).toBe(Number(snap.outputs.layers));

    // To another registry, by digest, with that registry's own credentials.
    const toProd = await runAction(
      {
        mode: 'promote',
        from: `${proxy.host}/staging/app@${digest}`,
        image: `${production.host}/prod/app:v1\n${production.host}/prod/app:latest`,
        'metadata-file': path.join(metaDir, 'promote.json'),
      },
      { env: { HOME: home } },
    );
    expectOk(toProd);
    expect(toProd.outputs.digest).toBe(digest);
    expect(
      (await inspect(`${production.host}/prod/app:v1`, { user: 'prod', pass: 'prod-secret-pass' })).Digest,
    ).toBe(digest);
    expect(
      (await inspect(`${production.host}/prod/app:latest`, { user: 'prod', pass: 'prod-secret-pass' }))
        .Digest,
    ).toBe(digest);
    expect((await validate(path.join(metaDir, 'promote.json'))).digest).toBe(digest);

    // To another repository of the same registry: every blob mounted, none sent.
    proxy.requests.length = 0;
    const toRelease = await runAction(
      { mode: 'promote', from: `${proxy.host}/staging/app:build-1`, image: `${proxy.host}/release/app:v1` },
      { env: { HOME: home } },
    );
    expectOk(toRelease);
    const mounted = proxy.requests.filter(
      (q) => q.method === 'POST' && q.path.includes('mount=') && q.status === 201,
    );
    // Layers and config, and the blobs of the attestations copied with the image: their shared
    // empty config, the SBOM and the provenance.
    expect(mounted.length).toBe(Number(snap.outputs.layers) + 1 + 3);
    expect(proxy.requests.filter((q) => q.method === 'PATCH')).toEqual([]);
    expect(toRelease.outputs.uploaded).toBe('0');
    expect((await inspect(`${staging.host}/release/app:v1`)).Digest).toBe(digest);

    // Pull into a layout that umoci unpacks to the captured tree.
    const out = path.join(await tmpDir('pulled'), 'layout');
    const pulled = await runAction({ mode: 'pull', from: `${staging.host}/release/app:v1`, output: out });
    expectOk(pulled);
    expect(pulled.outputs.digest).toBe(digest);
    const a = await snapshotTree(tree);
    const b = await snapshotTree(await unpack(out, 'v1'));
    a.delete('.');
    b.delete('.');
    expect(diffTrees(a, b)).toEqual([]);
  });

  it('refuses a blob whose bytes do not match its digest, and leaves no layout behind', async () => {
    const r = await runAction({ root: tree, image: `${staging.host}/corrupt/app:v1` });
    expectOk(r);
    // Flip the registry's stored copy of the biggest blob.
    const blobs = path.join(staging.dataDir, 'docker', 'registry', 'v2', 'blobs', 'sha256');
    let biggest = { file: '', size: 0 };
    for (const prefix of await readdir(blobs)) {
      for (const hex of await readdir(path.join(blobs, prefix))) {
        const file = path.join(blobs, prefix, hex, 'data');
        const data = await readFile(file);
        if (data.length > biggest.size) biggest = { file, size: data.length };
      }
    }
    const data = await readFile(biggest.file);
    data[data.length >> 1] ^= 0xff;
    await writeFile(biggest.file, data);
    const out = path.join(await tmpDir('pulled'), 'layout');
    const pulled = await runAction({ mode: 'pull', from: `${staging.host}/corrupt/app:v1`, output: out });
    expect(pulled.code).toBe(1);
    expect(pulled.errors).toHaveLength(1);
    expect(pulled.errors[0]).toMatch(/does not match its digest/);
    await expect(readdir(out)).rejects.toThrow();
  });

  it('runs as a CLI subcommand: promote --from … --to …', async () => {
    const r = await runAction({ root: tree, image: `${staging.host}/cli/app:v1` });
    expectOk(r);
    const { runCli } = await import('../helpers/action.js');
    const res = await runCli(
      ['promote', '--from', `${staging.host}/cli/app:v1`, '--to', `${staging.host}/cli/app:v2`],
      { env: { PATH: process.env.PATH ?? '', HOME: home } },
    );
    expect(res.code, res.stdout + res.stderr).toBe(0);
    expect(res.stdout).toContain(`digest=${r.outputs.digest}`);
    expect((await inspect(`${staging.host}/cli/app:v2`)).Digest).toBe(r.outputs.digest);
  });

  it("pushes a dry run's layout later with promote --from oci:DIR:TAG, digest unchanged", async () => {
    const out = path.join(await tmpDir('dry'), 'layout');
    const dry = await runAction({ root: tree, 'dry-run': 'true', output: out, image: 'example.com/x/y:v3' });
    expectOk(dry);
    const r = await runAction({
      mode: 'promote',
      from: `oci:${out}:v3`,
      image: `${staging.host}/fromlayout/app:v3`,
    });
    expectOk(r);
    expect(r.outputs.digest).toBe(dry.outputs.digest);
    expect((await inspect(`${staging.host}/fromlayout/app:v3`)).Digest).toBe(dry.outputs.digest);
  });

  it('promotes a layout through a proxy failing 20 % of requests, ending with the same digest', async () => {
    const out = path.join(await tmpDir('dry'), 'layout');
    const dry = await runAction({ root: tree, 'dry-run': 'true', output: out, image: 'example.com/x/y:v4' });
    expectOk(dry);
    const seen = new Set<string>();
    for (let i = 0; i < 8; i++) {
      const proxy = await startProxy({ target: staging.host, faultRate: 0.2, seed: 2000 + i });
      const r = await runAction({
        mode: 'promote',
        from: `oci:${out}:v4`,
        image: `${proxy.host}/faulty/p${i}:v4`,
      });
      const injected = proxy.requests.filter((q) => q.fault).map((q) => `${q.fault} ${q.method}`);
      expect({ seed: 2000 + i, errors: r.errors, code: r.code }, injected.join(', ')).toEqual({
        seed: 2000 + i,
        errors: [],
        code: 0,
      });
      expect(r.outputs.digest).toBe(dry.outputs.digest);
      for (const q of proxy.requests) if (q.fault && q.method === 'PUT') seen.add(q.fault);
      await proxy.stop();
    }
    // The blob PUTs themselves met faults: the streamed upload was retried from its source.
    expect(seen.size).toBeGreaterThan(0);
  });
});
