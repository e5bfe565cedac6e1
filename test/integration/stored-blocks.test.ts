// Acceptance for layers of already-compressed files: gzip layers whose incompressible blocks are
// deflate stored blocks, and zstd layers that are a sequence of independent frames, are the same for
// the same tree, and unpack to that very tree with skopeo + umoci, Docker and containerd.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { runAction } from '../helpers/action.js';
import { inspect, pull, unpack } from '../helpers/image.js';
import { startRegistry, type Registry } from '../helpers/registry.js';
import { startContainerd, startDocker, type Containerd, type Docker } from '../helpers/runtimes.js';
import { check, cleanupAll, onCleanup, run, tmpDir } from '../helpers/tools.js';
import { diffTrees, snapshotTree } from '../helpers/tree.js';

const MiB = 1024 * 1024;
/** Input bytes per compressed block (src/layer/compress.ts): gzip blocks, zstd frames. */
const BLOCK = { gzip: 2 * MiB, zstd: 4 * MiB } as const;
/** The most bytes one deflate stored block holds (LEN is 16 bits): how the action cuts a stored block. */
const STORED_MAX = 0xffff;
/**
 * Random bytes stand for packages and wheels: sizes bigger than a block, most not a multiple of it,
 * each file in a directory of its own.
 */
const RANDOM_FILES = [
  ['wheels/a.whl', 5 * MiB + 12345],
  ['archives/b.tar.gz', 8 * MiB],
  ['debs/c.deb', 3 * MiB + 1],
] as const;
/**
 * Several layers, so each runtime stacks more than one: wheels/, then archives/ with debs/, then doc/.
 * Each directory stays whole in one layer (a directory split among layers: see the last test).
 */
const LAYER_SIZE = '12MiB';

/** Docker reads zstd layers from 23.0 on; this machine's dockerd may be older. */
const dockerdVersion = /version (\d+)\.(\d+)/.exec(
  execFileSync('dockerd', ['--version'], { encoding: 'utf8' }),
);
const dockerReadsZstd = Number(dockerdVersion?.[1] ?? 0) >= 23;

let registry: Registry;
let docker: Docker;
let containerd: Containerd;
let tree: string;

beforeAll(async () => {
  [registry, docker, containerd, tree] = await Promise.all([
    startRegistry(),
    startDocker(),
    // Docker reads gzip layers with the machine's unpigz where installed (as here), umoci with Go's
    // pgzip; containerd is made to use Go's own gzip, so three decoders read the stored blocks.
    startContainerd({ env: { CONTAINERD_DISABLE_PIGZ: '1' } }),
    makeTree(),
  ]);
});
afterAll(cleanupAll);

/** Random files, one of them hardlinked, beside text files; xattrs, a file capability, a symlink. */
async function makeTree(): Promise<string> {
  const root = path.join(await tmpDir('stored-tree'), 'root');
  for (const [name, size] of RANDOM_FILES) {
    await mkdir(path.dirname(path.join(root, name)), { recursive: true });
    await writeFile(path.join(root, name), randomBytes(size));
  }
  await link(path.join(root, 'wheels', 'a.whl'), path.join(root, 'wheels', 'a-again.whl'));
  await symlink('a.whl', path.join(root, 'wheels', 'latest.whl'));
  await check('setfattr', ['-n', 'user.origin', '-v', 'pypi', path.join(root, 'wheels', 'a.whl')]);
  await mkdir(path.join(root, 'doc'));
  for (let i = 0; i < 200; i++)
    await writeFile(path.join(root, 'doc', `f${i}.txt`), `line ${i} of a readme\n`.repeat(i * 9));
  await check('setfattr', ['-n', 'user.lang', '-v', 'en', path.join(root, 'doc', 'f7.txt')]);
  await writeFile(path.join(root, 'doc', 'tool'), '#!/bin/sh\n', { mode: 0o755 });
  await check('setcap', ['cap_net_bind_service+ep', path.join(root, 'doc', 'tool')]);
  return root;
}

/** The tree as snapshotTree sees it, without the root directory (not part of an image). */
async function snapshot(root: string) {
  const snap = await snapshotTree(root);
  snap.delete('.');
  return snap;
}

/** The layer blobs of a layout's image, with their media types. */
async function layers(layout: string, digest: string): Promise<Array<{ mediaType: string; file: string }>> {
  const blob = (d: string) => path.join(layout, 'blobs', 'sha256', d.slice('sha256:'.length));
  const manifest = JSON.parse(await readFile(blob(digest), 'utf8')) as {
    layers: Array<{ mediaType: string; digest: string }>;
  };
  return manifest.layers.map((l) => ({ mediaType: l.mediaType, file: blob(l.digest) }));
}

/**
 * How many full deflate stored blocks (LEN 65,535, as the action writes a stored 2 MiB block) the
 * bytes hold, each followed by another stored block header: such a chain is not found by chance
 * (a 5-byte header every 65,540 bytes), and zlib never writes it at the levels the action uses,
 * where its own stored blocks hold what one of its internal blocks took in (about 16 KiB).
 */
function fullStoredBlocks(bytes: Buffer): number {
  const full = Buffer.from([0, 0xff, 0xff, 0, 0]); // BFINAL 0, BTYPE 00; LEN 65,535; NLEN its complement
  const isStoredHeader = (at: number) =>
    at + 5 <= bytes.length &&
    bytes[at] <= 1 &&
    (bytes.readUInt16LE(at + 1) ^ bytes.readUInt16LE(at + 3)) === 0xffff;
  let count = 0;
  let at = bytes.indexOf(full);
  while (at >= 0) {
    const next = at + 5 + STORED_MAX;
    if (isStoredHeader(next)) {
      count++;
      if (bytes.subarray(next, next + 5).equals(full)) {
        at = next;
        continue;
      }
    }
    at = bytes.indexOf(full, at + 1);
  }
  return count;
}

/** Blocks of the tar stream wholly inside a random file's bytes, wherever the file starts: at least these are stored. */
function wholeRandomBlocks(blockSize: number): number {
  return RANDOM_FILES.reduce((n, [, size]) => n + Math.max(0, Math.floor(size / blockSize) - 1), 0);
}

/** A pulled image's root filesystem in Docker's overlay2 store, its layers stacked read-only as a container sees them. */
/** The image pulled into containerd, its snapshot mounted read-only: the rootfs a container gets. */
async function containerdRootfs(ref: string): Promise<string> {
  const pulled = await containerd.ctr(['image', 'pull', '--plain-http', ref]);
  expect(pulled.code, pulled.stderr).toBe(0);
  return containerd.mount(ref);
}

async function dockerRootfs(ref: string): Promise<string> {
  const pulled = await docker.docker(['pull', ref]);
  expect(pulled.code, pulled.stderr).toBe(0);
  const inspected = await docker.docker(['image', 'inspect', '--format', '{{json .GraphDriver}}', ref]);
  expect(inspected.code, inspected.stderr).toBe(0);
  const driver = JSON.parse(inspected.stdout) as {
    Name: string;
    Data: { UpperDir: string; LowerDir?: string };
  };
  expect(driver.Name).toBe('overlay2');
  // UpperDir is the image's top layer; LowerDir the ones below it, topmost first.
  const dirs = [driver.Data.UpperDir, ...(driver.Data.LowerDir?.split(':') ?? [])];
  if (dirs.length === 1) return dirs[0];
  const merged = await tmpDir('docker-rootfs');
  await check('mount', ['-t', 'overlay', 'overlay', '-o', `ro,lowerdir=${dirs.join(':')}`, merged]);
  onCleanup(async () => {
    await run('umount', [merged]);
  });
  return merged;
}

for (const [compression, level] of [
  ['gzip', '1'],
  ['zstd', '3'],
] as const) {
  describe(`${compression}-${level} layers of incompressible and text files`, () => {
    const ref = () => `${registry.host}/stored/${compression}:v1`;
    let digest: string;

    beforeAll(async () => {
      const r = await runAction({
        root: tree,
        image: ref(),
        compression,
        'compression-level': level,
        'layer-size': LAYER_SIZE,
      });
      expect(r.errors).toEqual([]);
      expect(r.code).toBe(0);
      digest = r.outputs.digest;
    });

    it('gives the same digest in a dry run, with layers of the expected blocks', async () => {
      const output = path.join(await tmpDir('stored-layout'), 'layout');
      const r = await runAction({
        root: tree,
        'dry-run': 'true',
        output,
        compression,
        'compression-level': level,
        'layer-size': LAYER_SIZE,
      });
      expect(r.errors).toEqual([]);
      expect(r.outputs.digest).toBe(digest);
      const blobs = await layers(output, digest);
      expect(blobs.length).toBeGreaterThan(1);
      const randomBytesTotal = RANDOM_FILES.reduce((n, [, size]) => n + size, 0);
      if (compression === 'gzip') {
        let stored = 0;
        for (const { mediaType, file } of blobs) {
          expect(mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip');
          await check('gzip', ['-t', file]); // one gzip member, CRC and length right
          stored += fullStoredBlocks(await readFile(file));
        }
        // Every block wholly inside random bytes is stored, cut at 65,535 bytes.
        expect(stored).toBeGreaterThanOrEqual(
          wholeRandomBlocks(BLOCK.gzip) * Math.floor(BLOCK.gzip / STORED_MAX),
        );
      } else {
        let multiFrame = 0;
        for (const { mediaType, file } of blobs) {
          expect(mediaType).toBe('application/vnd.oci.image.layer.v1.tar+zstd');
          const tar = (await check('zstd', ['-d', '-c', file])).stdoutBytes;
          const listed = await check('zstd', ['-l', '-v', file]);
          const frames = Number(/# Zstandard Frames: (\d+)/.exec(listed.stdout)?.[1]);
          // One frame per 4 MiB of tar, the last one holding the rest.
          expect(frames).toBe(Math.max(1, Math.ceil(tar.length / BLOCK.zstd)));
          if (frames > 1) multiFrame++;
        }
        expect(multiFrame).toBeGreaterThan(0);
      }
      // Incompressible bytes are not expanded: the layers are the random bytes plus the text, deflated.
      expect(Number(r.outputs.size)).toBeLessThan(randomBytesTotal * 1.002 + 256 * 1024);
    });

    it('unpacks with skopeo and umoci to the same tree', async () => {
      const seen = await inspect(ref());
      expect(seen.Digest).toBe(digest);
      // umoci 0.4.7 reads no zstd: skopeo decompresses those layers and writes them as gzip.
      const rootfs = await unpack(await pull(ref(), { gzip: compression === 'zstd' }));
      expect(diffTrees(await snapshot(tree), await snapshot(rootfs))).toEqual([]);
    });

    it.skipIf(compression === 'zstd' && !dockerReadsZstd)(
      // Docker before 23.0 cannot decompress zstd layers (README, Limits): nothing to check there.
      'pulls into Docker, whose layers stack to the same tree',
      async () => {
        const rootfs = await dockerRootfs(ref());
        expect(diffTrees(await snapshot(tree), await snapshot(rootfs))).toEqual([]);
      },
    );

    it('pulls into containerd, whose snapshot mounts as the same tree', async () => {
      const rootfs = await containerdRootfs(ref());
      expect(diffTrees(await snapshot(tree), await snapshot(rootfs))).toEqual([]);
    });
  });
}

/** The entry names of each layer of a layout's image, as `tar -t` lists them (no trailing `/`). */
async function layerNames(layout: string, digest: string): Promise<string[][]> {
  const out: string[][] = [];
  for (const { mediaType, file } of await layers(layout, digest)) {
    const flags = mediaType.endsWith('+zstd')
      ? ['--zstd', '-tf']
      : mediaType.endsWith('+gzip')
        ? ['-tzf']
        : ['-tf'];
    const listed = await check('tar', [...flags, file]);
    out.push(
      listed.stdout
        .split('\n')
        .filter(Boolean)
        .map((n) => n.replace(/\/$/, '')),
    );
  }
  return out;
}

/** `a/b/c` → `a`, `a/b`. */
const parentsOf = (name: string) =>
  name
    .split('/')
    .slice(0, -1)
    .map((_, k, parts) => parts.slice(0, k + 1).join('/'));

describe('layers of directories that each fit in one', () => {
  it('hold every entry of the tree once, and nothing else (no directory carried into another layer)', async () => {
    const output = path.join(await tmpDir('whole-layout'), 'layout');
    const r = await runAction({ root: tree, 'dry-run': 'true', output, 'layer-size': LAYER_SIZE });
    expect(r.errors).toEqual([]);
    const names = await layerNames(output, r.outputs.digest);
    expect(names.length).toBeGreaterThan(2);
    const inTree = [...(await snapshot(tree)).keys()].map((k) => Buffer.from(k, 'latin1').toString()).sort();
    // A tree without /etc gets no marker layer: every layer is the tree's.
    expect(names.flat().sort()).toEqual(inTree);
  });
});

/**
 * A directory bigger than a layer, with an owner, mode and mtime of its own, split among layers, and
 * one inside it split too: overlay runtimes make a directory a layer lacks as 0755 root:root with the
 * pull time, hiding the real one, unless every layer carries the directories above what it holds.
 */
describe('a directory split across layers, and one split inside it', () => {
  const ref = () => `${registry.host}/stored/split:v1`;
  const SPLIT_FILES = [
    ['srv/pkgs/a', 5 * MiB],
    ['srv/pkgs/b', 8 * MiB],
    ['srv/pkgs/c', 3 * MiB],
    ['srv/pkgs/deep/x', 7 * MiB],
    ['srv/pkgs/deep/y', 7 * MiB],
  ] as const;
  /** Deepest first: a directory's mtime is set after what is made inside it. */
  const DIRS = [
    ['srv/pkgs/deep', '2000:2000', '1777', '@1400000000.25'],
    ['srv/pkgs', '1000:1000', '0750', '@1500000000.5'],
    ['srv', '3000:3000', '0711', '@1600000000.75'],
    ['etc', '0:4000', '0751', '@1300000000.125'],
  ] as const;
  let root: string;

  beforeAll(async () => {
    root = path.join(await tmpDir('split-tree'), 'root');
    for (const [name, size] of SPLIT_FILES) {
      await mkdir(path.dirname(path.join(root, name)), { recursive: true });
      await writeFile(path.join(root, name), randomBytes(size));
    }
    // An /etc makes it a system, with a marker layer (etc/depot-snapshot.json) on top.
    await mkdir(path.join(root, 'etc'), { mode: 0o750 });
    await writeFile(path.join(root, 'etc', 'hostname'), 'split\n');
    for (const [dir, owner, mode, mtime] of DIRS) {
      await check('chown', [owner, path.join(root, dir)]);
      await check('chmod', [mode, path.join(root, dir)]);
      await check('touch', ['-d', mtime, path.join(root, dir)]);
    }
    const r = await runAction({ root, image: ref(), 'layer-size': LAYER_SIZE });
    expect(r.errors).toEqual([]);
    expect(r.code).toBe(0);
  });

  it('gives layers that each hold the directories above their entries, each once', async () => {
    const output = path.join(await tmpDir('split-layout'), 'layout');
    const r = await runAction({ root, 'dry-run': 'true', output, 'layer-size': LAYER_SIZE });
    expect(r.errors).toEqual([]);
    // Not the pushed image's digest: the marker layer names the repository it was pushed to.
    const names = await layerNames(output, r.outputs.digest);
    expect(names.at(-1)).toContain('etc/depot-snapshot.json');
    // srv/pkgs and srv/pkgs/deep are each split (the precondition of this test).
    const holding = (name: string) => names.findIndex((l) => l.includes(name));
    expect(new Set(['srv/pkgs/a', 'srv/pkgs/b', 'srv/pkgs/deep/x'].map(holding)).size).toBe(3);
    expect(holding('srv/pkgs/deep/x')).not.toBe(holding('srv/pkgs/deep/y'));
    for (const layer of names) {
      expect(new Set(layer).size).toBe(layer.length);
      for (const name of layer)
        for (const parent of parentsOf(name)) expect(layer, `${parent} with ${name}`).toContain(parent);
    }
  });

  /** An image's tree without the marker file, which the source tree does not hold. */
  async function imageTree(rootfs: string) {
    const snap = await snapshot(rootfs);
    expect(snap.delete('etc/depot-snapshot.json')).toBe(true);
    return snap;
  }

  it('unpacks with skopeo and umoci to the same tree', async () => {
    const rootfs = await unpack(await pull(ref()));
    expect(diffTrees(await snapshot(root), await imageTree(rootfs))).toEqual([]);
  });

  it('pulls into Docker, where the split directories and /etc keep their owner, mode and mtime', async () => {
    const rootfs = await dockerRootfs(ref());
    expect(diffTrees(await snapshot(root), await imageTree(rootfs))).toEqual([]);
  });

  it('pulls into containerd, where the split directories and /etc keep their owner, mode and mtime', async () => {
    const rootfs = await containerdRootfs(ref());
    expect(diffTrees(await snapshot(root), await imageTree(rootfs))).toEqual([]);
  });
});
