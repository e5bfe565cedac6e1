// Acceptance for the action as it ships: run from a directory holding only action.yml and dist/
// (the runner's own checkout, nothing installed), the pre step and the main step both read extended
// attributes, so a tree where nothing changed between them gives nothing to capture but the marker.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { runAction, shippedAction, type ActionResult } from '../helpers/action.js';
import { inspect } from '../helpers/image.js';
import { startRegistry, type Registry } from '../helpers/registry.js';
import { check, cleanupAll, tmpDir } from '../helpers/tools.js';

/** More entries than the xattr reader's batch (2048), so its worker thread reads them. */
const MANY = 2100;

let registry: Registry;
let tree: string;

function expectOk(r: ActionResult): void {
  expect(r.errors, r.stdout + r.stderr).toEqual([]);
  expect(r.code).toBe(0);
  expect(r.stdout).not.toMatch(/^::warning::.*xattr/m);
}

/** Every xattr of `file` as getfattr (package attr) reads it, sorted by name. */
async function xattrsOf(file: string): Promise<Array<[string, Buffer]>> {
  const out = await check('getfattr', ['-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', file]);
  const found: Array<[string, Buffer]> = [];
  for (const line of out.stdout.split('\n')) {
    const m = /^([^#=][^=]*)=0x([0-9a-f]*)$/.exec(line);
    if (m) found.push([m[1], Buffer.from(m[2], 'hex')]);
  }
  return found.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** The xattr digest a baseline line ends with (src/diff/baseline.ts): names, lengths and values. */
function xattrDigest(xattrs: Array<[string, Buffer]>): string {
  const h = createHash('sha256');
  for (const [name, value] of xattrs) h.update(`${name}=${value.length}:`).update(value);
  return h.digest('base64url').slice(0, 22);
}

/** The baseline's last field (the xattr digest) by relative path. */
async function baselineXattrDigests(file: string): Promise<Map<string, string>> {
  const lines = gunzipSync(await readFile(file))
    .toString('utf8')
    .split('\n');
  expect(lines[0]).toMatch(/^depot-snapshot-baseline 1 /);
  const digests = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const fields = line.split(' ');
    if (fields.length > 2) digests.set(Buffer.from(fields[0], 'base64').toString(), fields.at(-1)!);
  }
  return digests;
}

beforeAll(async () => {
  registry = await startRegistry();
  tree = path.join(await tmpDir('shipped'), 'root');
  await mkdir(path.join(tree, 'etc'), { recursive: true });
  await mkdir(path.join(tree, 'usr', 'bin'), { recursive: true });
  await mkdir(path.join(tree, 'many'));
  await writeFile(path.join(tree, 'etc', 'hostname'), 'sandbox\n');
  await writeFile(path.join(tree, 'etc', 'labelled'), 'with a user xattr\n');
  await check('setfattr', ['-n', 'user.origin', '-v', 'setup-step', path.join(tree, 'etc', 'labelled')]);
  await writeFile(path.join(tree, 'usr', 'bin', 'ping'), '#!/bin/sh\necho ping\n', { mode: 0o755 });
  await check('setcap', ['cap_net_raw+ep', path.join(tree, 'usr', 'bin', 'ping')]);
  for (let i = 0; i < MANY; i++) await writeFile(path.join(tree, 'many', `f${i}`), '');
});
afterAll(cleanupAll);

describe('the action as shipped', () => {
  it('runs from a directory holding only action.yml and dist/, no node_modules in reach', () => {
    const { dir } = shippedAction();
    expect(readdirSync(dir).sort()).toEqual(['action.yml', 'dist']);
    for (let d = dir; ; d = path.dirname(d)) {
      expect(existsSync(path.join(d, 'node_modules')), d).toBe(false);
      if (d === path.dirname(d)) break;
    }
  });

  it('pre then main: xattrs and capabilities in the baseline, nothing changed, only the marker captured', async () => {
    const baseRef = `${registry.host}/shipped/base:v1`;
    const base = await runAction({ root: tree, image: baseRef });
    expectOk(base);
    const baseLayers = (await inspect(baseRef)).Layers;

    const inputs = { root: tree, 'base-image': baseRef, image: `${registry.host}/shipped/app:v1` };
    const pre = await runAction(inputs, { pre: true });
    expectOk(pre);
    expect(pre.state.baseline).toBeTruthy();

    const digests = await baselineXattrDigests(pre.state.baseline);
    const labelled = await xattrsOf(path.join(tree, 'etc', 'labelled'));
    const ping = await xattrsOf(path.join(tree, 'usr', 'bin', 'ping'));
    expect(labelled.map(([name]) => name)).toEqual(['user.origin']);
    expect(ping.map(([name]) => name)).toEqual(['security.capability']);
    expect(digests.get('etc/labelled')).toBe(xattrDigest(labelled));
    expect(digests.get('usr/bin/ping')).toBe(xattrDigest(ping));
    expect(digests.get('etc/hostname')).toBe('-');
    expect(digests.size).toBeGreaterThan(MANY);

    const main = await runAction(inputs, { state: pre.state });
    expectOk(main);
    expect(main.outputs.changes).toBe('baseline');
    expect(main.stdout).toMatch(/^0 entries new or changed, 0 deleted$/m);
    // The base's layers as they are, its marker replaced by a new one: no other layer.
    const pushed = await inspect(inputs.image);
    expect(pushed.Digest).toBe(main.outputs.digest);
    expect(pushed.Layers).toHaveLength(baseLayers.length);
    expect(pushed.Layers.slice(0, -1)).toEqual(baseLayers.slice(0, -1));
    expect(Number(main.outputs.layers)).toBe(baseLayers.length);
  });
});
