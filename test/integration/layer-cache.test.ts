// The layer cache lists the registries and repositories this machine pushed to: it belongs to the
// machine, never to the image, whatever mode captures a root that holds it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { runAction } from '../helpers/action.js';
import { pull, unpack } from '../helpers/image.js';
import { startRegistry, type Registry } from '../helpers/registry.js';
import { cleanupAll, tmpDir } from '../helpers/tools.js';
import { diffTrees, snapshotTree } from '../helpers/tree.js';

const CACHE = '.cache/depot-snapshot-action';

let registry: Registry;

beforeAll(async () => {
  registry = await startRegistry();
});
afterAll(cleanupAll);

/** A root holding root's home, with a layer cache an earlier push left there and another cache. */
async function rootWithCache(): Promise<string> {
  const root = path.join(await tmpDir('cache-root'), 'root');
  await mkdir(path.join(root, 'root', CACHE), { recursive: true });
  await mkdir(path.join(root, 'root/.cache/pip'), { recursive: true });
  await writeFile(
    path.join(root, 'root', CACHE, 'layers.json'),
    JSON.stringify({ fp: { repositories: ['registry.example/private/repo'] } }),
  );
  await writeFile(path.join(root, 'root/.cache/pip/keep'), 'kept\n');
  await mkdir(path.join(root, 'usr/bin'), { recursive: true });
  await writeFile(path.join(root, 'usr/bin/tool'), '#!/bin/sh\n', { mode: 0o755 });
  return root;
}

/** The unpacked image holds the whole root but the layer cache directory. */
async function expectAllButCache(root: string, unpacked: string): Promise<void> {
  expect(existsSync(path.join(unpacked, 'root', CACHE))).toBe(false);
  expect(existsSync(path.join(unpacked, 'root/.cache/pip/keep'))).toBe(true);
  const isCache = (rel: Buffer) => rel.toString().startsWith(`root/${CACHE}`);
  const want = await snapshotTree(root, { ignore: isCache });
  const got = await snapshotTree(unpacked);
  for (const tree of [want, got]) tree.delete('.');
  // Leaving a directory out changes its parent's contents, not its metadata.
  expect(diffTrees(want, got)).toEqual([]);
}

describe('the layer cache is never captured', () => {
  it.each([
    ['HOME', (root: string) => ({ HOME: path.join(root, 'root') })],
    ['XDG_CACHE_HOME', (root: string) => ({ XDG_CACHE_HOME: path.join(root, 'root/.cache') })],
  ])('by a dry run of a root holding the cache that %s points to', async (_, env) => {
    const root = await rootWithCache();
    const output = path.join(await tmpDir('cache-layout'), 'layout');
    const r = await runAction({ root, 'dry-run': 'true', output }, { env: env(root) });
    expect(r.errors).toEqual([]);
    expect(r.code).toBe(0);
    await expectAllButCache(root, await unpack(output));
  });

  it('by a push, also once the push itself wrote the cache into the root', async () => {
    const root = await rootWithCache();
    const env = { HOME: path.join(root, 'root') };
    for (const repo of ['first', 'second']) {
      const ref = `${registry.host}/cache/${repo}:v1`;
      const r = await runAction({ root, image: ref }, { env });
      expect(r.errors).toEqual([]);
      expect(r.code).toBe(0);
      await expectAllButCache(root, await unpack(await pull(ref)));
    }
  });
});
