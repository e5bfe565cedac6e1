// Acceptance: a capture loses nothing. The fixture (every entry kind and metadata case) and a real
// Debian rootfs, captured by the bundled action as the runner runs it, unpack with umoci to the very
// same tree, directly from the layout and after a round trip through a real registry.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { runAction } from '../helpers/action.js';
import { makeFixtureTree, type FixtureInfo } from '../helpers/fixture.js';
import { debianRootfs, pull, pushLayout, unpack } from '../helpers/image.js';
import { startRegistry, type Registry } from '../helpers/registry.js';
import { check, cleanupAll, tmpDir } from '../helpers/tools.js';
import { diffTrees, pathKey, snapshotTree } from '../helpers/tree.js';

let registry: Registry;
let fixtureRoot: string;
let fixture: FixtureInfo;

beforeAll(async () => {
  registry = await startRegistry();
  fixtureRoot = path.join(await tmpDir('fixture'), 'root');
  fixture = await makeFixtureTree(fixtureRoot);
});
afterAll(cleanupAll);

async function capture(root: string, extra: Record<string, string> = {}) {
  const output = path.join(await tmpDir('layout'), 'layout');
  const r = await runAction({ root, 'dry-run': 'true', output, ...extra });
  expect(r.errors).toEqual([]);
  expect(r.code).toBe(0);
  return { output, result: r };
}

describe('fixture tree', () => {
  it('unpacks from the layout to the same tree, the socket aside', async () => {
    const { output, result } = await capture(fixtureRoot);
    expect(result.stdout).toMatch(/socket/);
    const rootfs = await unpack(output);
    const socket = pathKey(fixture.socket);
    const source = await snapshotTree(fixtureRoot, { ignore: (rel) => pathKey(rel) === socket });
    const unpacked = await snapshotTree(rootfs);
    source.delete('.'); // the root directory itself is not part of an image
    unpacked.delete('.');
    expect(unpacked.has(socket)).toBe(false);
    expect(diffTrees(source, unpacked)).toEqual([]);

    // And through a real registry: skopeo pushes the layout, pulls it back, umoci unpacks it.
    const ref = `${registry.host}/roundtrip/fixture:t`;
    await pushLayout(output, 'latest', ref);
    const again = await snapshotTree(await unpack(await pull(ref)));
    again.delete('.');
    expect(diffTrees(source, again)).toEqual([]);
  });

  it('writes a valid OCI layout with the tag as ref.name', async () => {
    const { output, result } = await capture(fixtureRoot, { image: 'example.com/team/app:v7' });
    const index = JSON.parse(await readFile(path.join(output, 'index.json'), 'utf8')) as {
      manifests: Array<{ digest: string; artifactType?: string; annotations?: Record<string, string> }>;
    };
    // One tagged image; the rest are its attestations (SBOM, provenance), untagged, about that image.
    const [image, ...artifacts] = index.manifests;
    expect(image.annotations?.['org.opencontainers.image.ref.name']).toBe('v7');
    expect(image.digest).toBe(result.outputs.digest);
    expect(artifacts.map((a) => a.artifactType).sort()).toEqual([
      'application/vnd.cyclonedx+json',
      'application/vnd.in-toto+json',
    ]);
    for (const a of artifacts) {
      expect(a.annotations?.['org.opencontainers.image.ref.name']).toBeUndefined();
      const manifest = JSON.parse(
        await readFile(path.join(output, 'blobs', 'sha256', a.digest.slice('sha256:'.length)), 'utf8'),
      );
      expect(manifest.subject.digest).toBe(result.outputs.digest);
    }
    expect(JSON.parse(await readFile(path.join(output, 'oci-layout'), 'utf8'))).toEqual({
      imageLayoutVersion: '1.0.0',
    });
  });
});

describe('Debian rootfs', () => {
  it('unpacks to the same tree, volatile directories kept empty', async () => {
    const root = await debianRootfs();
    const { output } = await capture(root);
    const volatile = ['proc', 'sys', 'dev', 'run', 'tmp'];
    const inVolatile = (rel: Buffer) => volatile.some((d) => rel.toString().startsWith(d + '/'));
    const source = await snapshotTree(root, {
      ignore: (rel) => inVolatile(rel) || rel.toString() === '.complete',
    });
    const unpacked = await snapshotTree(await unpack(output));
    source.delete('.');
    unpacked.delete('.');
    // The volatile directories' mtimes change when their (left out) contents do; compare the rest.
    for (const d of volatile) {
      expect(unpacked.get(d)?.mode).toBe(source.get(d)?.mode);
      source.delete(d);
      unpacked.delete(d);
    }
    unpacked.delete('.complete');
    // The image's marker, naming its repository and layers (README, "Snapshots of snapshots").
    expect(unpacked.get('etc/depot-snapshot.json')?.type).toBe('file');
    unpacked.delete('etc/depot-snapshot.json');
    expect(source.size).toBeGreaterThan(3000);
    expect(diffTrees(source, unpacked)).toEqual([]);
  });
});

describe('a tree of already-compressed files and text', () => {
  it('gives the same digest twice, layers gzip reads, and unpacks to the same tree', async () => {
    const root = path.join(await tmpDir('incompressible'), 'root');
    await mkdir(path.join(root, 'wheels'), { recursive: true });
    await mkdir(path.join(root, 'doc'), { recursive: true });
    // Random bytes stand for packages and wheels: blocks of them are stored, the text deflated.
    for (const [name, size] of [
      ['a.whl', 5 * 1024 * 1024 + 12345],
      ['b.deb', 3 * 1024 * 1024],
      ['c.zip', 70 * 1024],
    ] as const)
      await writeFile(path.join(root, 'wheels', name), randomBytes(size));
    for (let i = 0; i < 300; i++)
      await writeFile(path.join(root, 'doc', `f${i}.txt`), `line ${i} of a readme\n`.repeat(i * 7));
    await check('setfattr', ['-n', 'user.origin', '-v', 'pypi', path.join(root, 'wheels', 'a.whl')]);

    const first = await capture(root);
    const second = await capture(root);
    expect(second.result.outputs.digest).toBe(first.result.outputs.digest);
    // Each layer blob is one gzip stream that the gzip command checks (CRC and length).
    const blobs = path.join(first.output, 'blobs', 'sha256');
    for (const blob of await readdir(blobs)) {
      const head = (await readFile(path.join(blobs, blob))).subarray(0, 2);
      if (head[0] === 0x1f && head[1] === 0x8b) await check('gzip', ['-t', path.join(blobs, blob)]);
    }
    // Not larger than the random bytes plus a little: they were not expanded.
    expect(Number(first.result.outputs.size)).toBeLessThan(
      (8 * 1024 * 1024 + 12345 + 70 * 1024) * 1.002 + 64 * 1024,
    );

    const source = await snapshotTree(root);
    const unpacked = await snapshotTree(await unpack(first.output));
    source.delete('.');
    unpacked.delete('.');
    expect(diffTrees(source, unpacked)).toEqual([]);
  });
});
