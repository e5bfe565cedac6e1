// OCI layouts: the gzip-1 dry run of the tree that P1 makes and P5 pushes, and reading a layout.
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { cleanEnv, exec, failureText } from './exec.mjs';
import { WORK, log } from './paths.mjs';

/** Where P1 gzip-1 leaves its last dry run of the tree (our default compression). */
export const GZIP1_LAYOUT = path.join(WORK, 'out', 'P1-gzip');

/**
 * The gzip-1 OCI layout of `tree`: `made` (P1 gzip-1's, when it ran and its last run succeeded), or
 * one untimed dry run into GZIP1_LAYOUT. `{ layout }`, or `{ failure }` when that dry run failed.
 */
export async function ensureGzip1Layout({ made, node, cli, tree, home }) {
  if (made) return { layout: made };
  log('making the OCI layout of the tree with one untimed dry run (gzip-1)…');
  await rm(GZIP1_LAYOUT, { recursive: true, force: true });
  const r = await exec(node, [cli, '--root', tree, '--dry-run', '--output', GZIP1_LAYOUT], {
    env: cleanEnv({ HOME: home }),
  });
  return r.code === 0 ? { layout: GZIP1_LAYOUT } : { failure: failureText(r) };
}

/** The ref name (org.opencontainers.image.ref.name) of the first manifest in a layout's index.json. */
export async function layoutTag(layout) {
  const index = JSON.parse(await readFile(path.join(layout, 'index.json'), 'utf8'));
  return index.manifests?.[0]?.annotations?.['org.opencontainers.image.ref.name'] ?? 'latest';
}

/** Layer descriptors of the first manifest of an OCI layout. */
export async function layoutLayers(layout) {
  const index = JSON.parse(await readFile(path.join(layout, 'index.json'), 'utf8'));
  const d = index.manifests[0].digest.split(':');
  const manifest = JSON.parse(await readFile(path.join(layout, 'blobs', d[0], d[1]), 'utf8'));
  return manifest.layers;
}
