// Acceptance for the layer budget: a team rebuilds its CI image from the previous one, generation
// after generation, each a small setup change and a snapshot with no base-image (the marker names the
// parent). The layer count must stay within max-layers, compaction must merge only layers earlier
// snapshots made, and the last image must equal the sandbox and run in Docker and podman, which refuse
// images of more than about 125 layers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendFile, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { runAction, type ActionResult } from '../helpers/action.js';
import { debianRootfs, pull, unpack } from '../helpers/image.js';
import { startRegistry, type Registry } from '../helpers/registry.js';
import { podman, startDocker } from '../helpers/runtimes.js';
import { check, cleanupAll } from '../helpers/tools.js';
import { diffTrees, snapshotTree, type TreeSnapshot } from '../helpers/tree.js';

const GENERATIONS = 150;
const MAX_LAYERS = 64; // the default
const VOLATILE = ['proc', 'sys', 'dev', 'run', 'tmp'];

interface Descriptor {
  digest: string;
  size: number;
}

let registry: Registry;

function expectOk(r: ActionResult): void {
  expect(r.errors).toEqual([]);
  expect(r.code).toBe(0);
}

async function layersOf(repository: string, tag: string): Promise<Descriptor[]> {
  const res = await fetch(`${registry.url}/v2/${repository}/manifests/${tag}`, {
    headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { layers: Descriptor[] }).layers;
}

/**
 * What a sandbox started from the image has that the last sandbox lacks: the image's marker layer
 * (the marker file, and /etc's entry as that layer carries it), extracted as an unpacker would.
 */
async function applyMarkerLayer(sandbox: string, repository: string, marker: Descriptor): Promise<void> {
  const res = await fetch(`${registry.url}/v2/${repository}/blobs/${marker.digest}`);
  expect(res.status).toBe(200);
  const blob = Buffer.from(await res.arrayBuffer());
  // An unpacker keeps a directory's time when it adds a file to it (umoci, containerd): so does this.
  const etc = path.join(sandbox, 'etc');
  const { mtimeNs } = await stat(etc, { bigint: true });
  await check('tar', ['-xzf', '-', '--numeric-owner', '-p', '-C', sandbox], { input: blob });
  const ns = String(mtimeNs % 1_000_000_000n).padStart(9, '0');
  await check('touch', ['-m', '-d', `@${mtimeNs / 1_000_000_000n}.${ns}`, etc]);
}

async function comparable(root: string): Promise<TreeSnapshot> {
  const inVolatile = (rel: Buffer) => VOLATILE.some((d) => rel.toString().startsWith(d + '/'));
  const snap = await snapshotTree(root, {
    ignore: (rel) => inVolatile(rel) || rel.toString() === '.complete',
  });
  for (const key of ['.', ...VOLATILE]) snap.delete(key);
  return snap;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

beforeAll(async () => {
  registry = await startRegistry();
});
afterAll(cleanupAll);

describe('snapshots of snapshots, 150 generations', () => {
  it(
    'stay within max-layers, merge only what snapshots made, equal the sandbox and run in Docker and podman',
    { timeout: 1_800_000 },
    async () => {
      const repository = 'chain/ci';
      const ref = `${registry.host}/${repository}:latest`;
      // Generation 0: the Debian base, made by this action (so it carries a marker).
      const rootfs = await debianRootfs();
      expectOk(
        await runAction({
          root: rootfs,
          image: `${registry.host}/base/debian:bookworm`,
          exclude: '/.complete',
        }),
      );
      const base = (await layersOf('base/debian', 'bookworm')).slice(0, -1);
      const sandbox = await unpack(await pull(`${registry.host}/base/debian:bookworm`));
      await rm(path.join(sandbox, '.complete'), { force: true });

      const uploads: number[] = [];
      const compactions: Array<{
        generation: number;
        uploaded: number;
        replaced: number;
        changeLayers: number;
      }> = [];
      let parent: Descriptor[] = base;
      for (let g = 1; g <= GENERATIONS; g++) {
        const inputs = { root: sandbox, image: ref };
        const pre = await runAction(inputs, { pre: true });
        expectOk(pre);

        // The setup change: a new directory with 20 KB, a library, a line in /etc/environment, and an
        // old directory removed.
        await mkdir(path.join(sandbox, 'opt', `gen${g}`), { recursive: true });
        await writeFile(path.join(sandbox, 'opt', `gen${g}`, 'data'), Buffer.alloc(20_000, g % 251));
        await writeFile(path.join(sandbox, 'usr', 'local', 'lib', `libgen${g}.so`), `generation ${g}\n`);
        await appendFile(path.join(sandbox, 'etc', 'environment'), `GEN${g}=${g}\n`);
        // Extended attributes of a file no later generation touches: a merged layer keeps them.
        const lib = path.join(sandbox, 'usr', 'local', 'lib', `libgen${g}.so`);
        await check('setcap', ['cap_net_raw+ep', lib]);
        await check('setfattr', ['-n', 'user.origin', '-v', `generation ${g}`, lib]);
        if (g > 5) await rm(path.join(sandbox, 'opt', `gen${g - 5}`), { recursive: true });
        // A directory made early (in layers that stay), then, once compaction has begun, removed and
        // made again with other contents: a merge must not let the early contents show through.
        const toggle = path.join(sandbox, 'opt', 'toggle');
        if (g === 1 || (g > MAX_LAYERS && g % 3 === 1))
          await mkdir(toggle).then(() => writeFile(path.join(toggle, `made-in-${g}`), `${g}\n`));
        if (g > MAX_LAYERS && g % 3 === 0) await rm(toggle, { recursive: true });

        const r = await runAction(inputs, { state: pre.state });
        expectOk(r);
        expect(r.outputs.changes).toBe('baseline');
        const layers = await layersOf(repository, 'latest');
        expect(layers.length).toBeLessThanOrEqual(MAX_LAYERS);
        // The base the chain started from is never touched.
        expect(layers.slice(0, base.length)).toEqual(base);
        const uploaded = Number(r.outputs.uploaded);
        uploads.push(uploaded);

        const below = layers.slice(0, -1);
        const kept = parent.filter((l, i) => below[i]?.digest === l.digest).length;
        if (r.stdout.includes('compacted:')) {
          const replaced = parent.slice(kept).reduce((n, l) => n + l.size, 0);
          compactions.push({ generation: g, uploaded, replaced, changeLayers: below.length - kept });
        } else {
          // Otherwise the parent's layers stay, and only this generation's change is added.
          expect(kept).toBe(parent.length);
        }
        parent = below;
        await applyMarkerLayer(sandbox, repository, layers.at(-1)!);
        if (compactions.at(-1)?.generation === g) {
          // A compacted image is the sandbox as it is now, like any other.
          const unpacked = await unpack(await pull(ref));
          expect(diffTrees(await comparable(sandbox), await comparable(unpacked)), `generation ${g}`).toEqual(
            [],
          );
        }
      }

      // Compaction happened, more than once, and each time sent no more than the layers it replaced
      // (plus the small marker and config), never the base's.
      expect(compactions.length).toBeGreaterThanOrEqual(2);
      for (const c of compactions)
        expect(c.uploaded, JSON.stringify(c)).toBeLessThanOrEqual(c.replaced + 64 * 1024);
      // A generation sends about its change (20 KB and two small files, compressed) with the marker.
      expect(median(uploads)).toBeLessThan(100 * 1024);

      const result = await unpack(await pull(ref));
      expect(diffTrees(await comparable(sandbox), await comparable(result))).toEqual([]);

      for (const runtime of [await startDocker(), await podman()]) {
        const r = await runtime.run(ref, [
          '/bin/sh',
          '-c',
          `cat /opt/gen${GENERATIONS}/data | wc -c; tail -1 /etc/environment; ls /opt`,
        ]);
        expect(r.code, `${runtime.name}: ${r.stderr}`).toBe(0);
        const expectedDirs = Array.from({ length: 5 }, (_, i) => `gen${GENERATIONS - 4 + i}`).sort();
        expect(r.stdout.trim().split('\n')).toEqual([
          '20000',
          `GEN${GENERATIONS}=${GENERATIONS}`,
          ...expectedDirs,
        ]);
      }
    },
  );
});
