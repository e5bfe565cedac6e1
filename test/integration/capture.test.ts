// Determinism, runtimes and what the walk leaves out, through the bundled action.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, symlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { NODE24, SYSTEM_NODE, runAction } from '../helpers/action.js';
import { inspect, pull, unpack } from '../helpers/image.js';
import { startRegistry, type Registry } from '../helpers/registry.js';
import { check, cleanupAll, onCleanup, run, tmpDir } from '../helpers/tools.js';
import { diffTrees, snapshotTree } from '../helpers/tree.js';

let registry: Registry;
let tree: string;

/** Several subtrees of a few MiB, so a 1 MiB layer size gives several layers. */
async function makeTree(dir: string): Promise<void> {
  for (const sub of ['alpha', 'beta', 'gamma', 'delta']) {
    await mkdir(path.join(dir, sub), { recursive: true });
    for (let i = 0; i < 4; i++) await writeFile(path.join(dir, sub, `f${i}`), randomBytes(400 * 1024));
  }
  await symlink('alpha/f0', path.join(dir, 'link'));
}

async function manifestOf(layout: string, digest: string): Promise<{ layers: Array<{ digest: string }> }> {
  return JSON.parse(await readFile(path.join(layout, 'blobs', 'sha256', digest.slice(7)), 'utf8'));
}

async function dryRun(root: string, extra: Record<string, string> = {}, node?: string) {
  const output = path.join(await tmpDir('layout'), 'layout');
  const r = await runAction({ root, 'dry-run': 'true', output, 'layer-size': '1MiB', ...extra }, { node });
  expect(r.errors).toEqual([]);
  expect(r.code).toBe(0);
  return { output, digest: r.outputs.digest, result: r };
}

beforeAll(async () => {
  registry = await startRegistry();
  tree = path.join(await tmpDir('tree'), 'root');
  await makeTree(tree);
});
afterAll(cleanupAll);

describe('determinism', () => {
  it('captures an unchanged tree to the same digest; a touched file changes only its layer', async () => {
    const a = await dryRun(tree);
    const b = await dryRun(tree);
    expect(b.digest).toBe(a.digest);
    const before = await manifestOf(a.output, a.digest);
    expect(before.layers.length).toBeGreaterThanOrEqual(4);

    const later = new Date(Date.now() + 60_000);
    await utimes(path.join(tree, 'gamma', 'f2'), later, later);
    const c = await dryRun(tree);
    expect(c.digest).not.toBe(a.digest);
    const after = await manifestOf(c.output, c.digest);
    expect(after.layers.length).toBe(before.layers.length);
    const changed = after.layers.filter((l, i) => l.digest !== before.layers[i].digest);
    expect(changed).toHaveLength(1);
  });

  it('gives the same digest on Node 20 and Node 24 for uncompressed layers', async () => {
    expect((await run(NODE24, ['--version'])).stdout).toMatch(/^v24\./);
    const a = await dryRun(tree, { compression: 'none' }, SYSTEM_NODE);
    const b = await dryRun(tree, { compression: 'none' }, NODE24);
    expect(b.digest).toBe(a.digest);
  });
});

describe('runtimes', () => {
  it('runs on Node 24 and pushes zstd layers that the registry and skopeo accept', async () => {
    const ref = `${registry.host}/capture/zstd:v1`;
    const r = await runAction({ root: tree, image: ref, compression: 'zstd' }, { node: NODE24 });
    expect(r.errors).toEqual([]);
    const seen = await inspect(ref);
    expect(seen.Digest).toBe(r.outputs.digest);
    const manifest = JSON.parse(
      (await check('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`])).stdout,
    );
    expect(manifest.layers.every((l: { mediaType: string }) => l.mediaType.endsWith('+zstd'))).toBe(true);
    // umoci 0.4.7 cannot read zstd: skopeo recompresses to gzip on the way back.
    const rootfs = await unpack(await pull(ref, { gzip: true }));
    const src = await snapshotTree(tree);
    const out = await snapshotTree(rootfs);
    src.delete('.');
    out.delete('.');
    expect(diffTrees(src, out)).toEqual([]);
  });

  it('layers of many compression blocks decode with the zstd and gzip commands to their diff IDs', async () => {
    // 24 MiB in one layer: six 4 MiB zstd frames, twelve 2 MiB gzip blocks; half random, half repeating.
    const big = path.join(await tmpDir('big'), 'root');
    await mkdir(big, { recursive: true });
    await writeFile(path.join(big, 'random'), randomBytes(12 * 1024 * 1024));
    await writeFile(
      path.join(big, 'text'),
      Buffer.alloc(12 * 1024 * 1024, 'usr/lib/python3 site-packages\n'),
    );
    for (const [compression, command, node] of [
      ['zstd', 'zstd', NODE24],
      ['gzip', 'gzip', undefined],
    ] as const) {
      const { output, digest } = await dryRun(big, { compression, 'layer-size': '1GiB' }, node);
      const manifest = JSON.parse(
        await readFile(path.join(output, 'blobs', 'sha256', digest.slice(7)), 'utf8'),
      );
      const config = JSON.parse(
        await readFile(path.join(output, 'blobs', 'sha256', manifest.config.digest.slice(7)), 'utf8'),
      );
      const layers = manifest.layers.filter((l: { size: number }) => l.size > 1024 * 1024);
      expect(layers).toHaveLength(1);
      const i = manifest.layers.indexOf(layers[0]);
      const blob = path.join(output, 'blobs', 'sha256', layers[0].digest.slice(7));
      const decoded = await check('bash', ['-c', `${command} -dc < '${blob}' | sha256sum`]);
      expect('sha256:' + decoded.stdout.split(' ')[0]).toBe(config.rootfs.diff_ids[i]);
    }
  });

  it('explains that zstd needs a newer Node on Node 20', async () => {
    expect((await run(SYSTEM_NODE, ['--version'])).stdout).toMatch(/^v20\./);
    const r = await runAction(
      { root: tree, 'dry-run': 'true', output: path.join(await tmpDir('o'), 'o'), compression: 'zstd' },
      { node: SYSTEM_NODE },
    );
    expect(r.code).toBe(1);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatch(/zstd.*Node/);
  });
});

describe('what is left out', () => {
  it('keeps a tmpfs mount point empty, drops the output and excluded globs, and says so', async () => {
    const root = path.join(await tmpDir('mounts'), 'root');
    await mkdir(path.join(root, 'cache', 'mnt'), { recursive: true });
    await mkdir(path.join(root, 'var', 'log'), { recursive: true });
    await writeFile(path.join(root, 'var', 'log', 'a.log'), 'log');
    await writeFile(path.join(root, 'keep.txt'), 'keep');
    await writeFile(path.join(root, 'x.pyc'), 'bytecode');
    await check('mount', ['-t', 'tmpfs', 'tmpfs', path.join(root, 'cache', 'mnt')]);
    onCleanup(() => run('umount', [path.join(root, 'cache', 'mnt')]).then(() => undefined));
    await writeFile(path.join(root, 'cache', 'mnt', 'in-tmpfs'), 'volatile');
    const output = path.join(root, 'layout'); // inside the root: must not capture itself
    const r = await runAction({ root, 'dry-run': 'true', output, exclude: '**/*.pyc\n/var/log' });
    expect(r.errors).toEqual([]);
    expect(r.stdout).toMatch(/left out: tmpfs mount \(kept empty\): 1 \(\/cache\/mnt\)/);
    expect(r.stdout).toMatch(/exclude: \*\*\/\*\.pyc: 1/);
    const rootfs = await unpack(output);
    const got = [...(await snapshotTree(rootfs)).keys()].sort();
    expect(got).toEqual(['.', 'cache', 'cache/mnt', 'keep.txt', 'var']);
  });

  it('refuses a real file named like a whiteout', async () => {
    const root = await tmpDir('wh');
    await writeFile(path.join(root, '.wh.evil'), '');
    const r = await runAction({ root, 'dry-run': 'true', output: path.join(await tmpDir('o'), 'o') });
    expect(r.code).toBe(1);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatch(/\.wh\.evil.*whiteout/);
  });
});

describe('credentials from the Docker config', () => {
  it('uses auths and credential helpers', async () => {
    const basic = await startRegistry({
      auth: 'htpasswd',
      users: [{ user: 'carol', pass: 'docker-config-pass' }],
    });
    const home = await tmpDir('home');
    await mkdir(path.join(home, '.docker'));
    const auth = Buffer.from('carol:docker-config-pass').toString('base64');
    await writeFile(
      path.join(home, '.docker', 'config.json'),
      JSON.stringify({ auths: { [basic.host]: { auth } } }),
    );
    const small = await tmpDir('small');
    await writeFile(path.join(small, 'f'), 'x');
    const r1 = await runAction({ root: small, image: `${basic.host}/cfg/auths:v1` }, { env: { HOME: home } });
    expect(r1.errors).toEqual([]);
    expect(r1.stdout).toContain('.docker/config.json');

    // A credential helper on PATH: docker-credential-<name> get, server on stdin, JSON on stdout.
    const bin = await tmpDir('bin');
    const helper = path.join(bin, 'docker-credential-testhelper');
    await writeFile(
      helper,
      `#!/bin/sh\nread server\n[ "$server" = "${basic.host}" ] || exit 1\necho '{"Username":"carol","Secret":"docker-config-pass"}'\n`,
      { mode: 0o755 },
    );
    await writeFile(
      path.join(home, '.docker', 'config.json'),
      JSON.stringify({ credHelpers: { [basic.host]: 'testhelper' } }),
    );
    const r2 = await runAction(
      { root: small, image: `${basic.host}/cfg/helper:v1` },
      { env: { HOME: home, PATH: `${bin}:${process.env.PATH}` } },
    );
    expect(r2.errors).toEqual([]);
    expect(r2.stdout).toContain('docker-credential-testhelper');
    expect(r2.stdout).not.toContain('docker-config-pass');
  });
});
