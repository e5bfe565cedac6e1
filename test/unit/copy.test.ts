import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { copyBlobs } from '../../src/content/copy.js';
import type { BlobCounts, BlobSource, BlobTarget } from '../../src/content/storage.js';
import type { Descriptor } from '../../src/content/oci.js';
import { silentLogger } from '../../src/log.js';
import { RegistryClient } from '../../src/registry/client.js';
import { Repository } from '../../src/registry/repository.js';

/** In-process fakes: what copyBlobs decides for each blob, not how a transport carries it. */
const blob = (n: number): Descriptor => ({
  mediaType: 'application/octet-stream',
  digest: `sha256:${String(n).padStart(64, '0')}`,
  size: n,
});

function source(name: string, registry?: string): BlobSource {
  return { name, registry, openBlob: async () => Readable.from([]) };
}

/** A target holding `held`, whose registry mounts `mountable` (when it can mount at all). */
function target(opts: {
  name: string;
  registry?: string;
  held?: Descriptor[];
  mountable?: Descriptor[];
  canMount?: boolean;
}): BlobTarget & { calls: string[] } {
  const calls: string[] = [];
  const has = (list: Descriptor[] | undefined, digest: string) => !!list?.some((d) => d.digest === digest);
  const counts: BlobCounts = { present: 0, mounted: 0, sent: 0, bytes: 0 };
  return {
    name: opts.name,
    registry: opts.registry,
    calls,
    counts,
    exists: async (digest) => {
      calls.push(`exists ${digest.slice(-1)}`);
      return has(opts.held, digest);
    },
    ...(opts.canMount === false
      ? {}
      : {
          mount: async (digest: string, from: string) => {
            calls.push(`mount ${digest.slice(-1)} from ${from}`);
            return has(opts.mountable, digest);
          },
        }),
    copyFrom: async (_source, d) => {
      calls.push(`copy ${d.digest.slice(-1)}`);
    },
  };
}

describe('copyBlobs', () => {
  const blobs = [blob(1), blob(2), blob(3)];

  it('skips what the target has, mounts within one registry, streams the rest', async () => {
    const to = target({ name: 'snap/b', registry: 'r.example', held: [blob(1)], mountable: [blob(2)] });
    const how = await copyBlobs(source('snap/a', 'r.example'), blobs, to, { concurrency: 1 });
    expect(how).toEqual({ present: 1, mounted: 1, copied: 1 });
    expect(to.calls).toEqual([
      'exists 1',
      'exists 2',
      'mount 2 from snap/a',
      'exists 3',
      'mount 3 from snap/a',
      'copy 3',
    ]);
  });

  it('never mounts across registries, from the target itself, from a layout, or into a target that cannot', async () => {
    for (const [from, to] of [
      [source('snap/a', 'other.example'), target({ name: 'snap/b', registry: 'r.example' })],
      [source('snap/b', 'r.example'), target({ name: 'snap/b', registry: 'r.example' })],
      [source('oci:/tmp/l'), target({ name: 'snap/b', registry: 'r.example' })],
      [source('snap/a', 'r.example'), target({ name: 'snap/b', registry: 'r.example', canMount: false })],
    ] as const) {
      const how = await copyBlobs(from, blobs, to, { concurrency: 2 });
      expect(how).toEqual({ present: 0, mounted: 0, copied: 3 });
      expect(to.calls.filter((c) => c.startsWith('mount'))).toEqual([]);
    }
  });

  it('writes every blob into a target that cannot tell what it holds (a new layout)', async () => {
    const to = target({ name: 'oci:/out', canMount: false });
    delete (to as Partial<BlobTarget>).exists;
    expect(await copyBlobs(source('snap/a', 'r.example'), blobs, to, { concurrency: 3 })).toEqual({
      present: 0,
      mounted: 0,
      copied: 3,
    });
    expect(to.calls.sort()).toEqual(['copy 1', 'copy 2', 'copy 3']);
  });
});

describe('a repository as a copy target', () => {
  it('keeps its own counts of blobs found, mounted and sent, which others only read', async () => {
    const stored = blob(1);
    const client = new RegistryClient({
      registry: 'r.example',
      credentials: { source: 'anonymous' },
      insecure: false,
      log: silentLogger,
      transport: async (url, init) => {
        if (url.pathname === '/v2/') return new Response(null, { status: 200 });
        if (init.method === 'HEAD')
          return url.pathname.endsWith(stored.digest)
            ? new Response(null, { status: 200, headers: { 'Docker-Content-Digest': stored.digest } })
            : new Response(null, { status: 404 });
        if (init.method === 'POST' && url.searchParams.get('mount') === blob(2).digest)
          return new Response(null, { status: 201 });
        if (init.method === 'POST')
          return new Response(null, { status: 202, headers: { Location: '/up/1' } });
        return new Response(null, { status: 204 }); // the cancelled upload of a declined mount
      },
    });
    const repo = new Repository(client, 'snap/b');
    const how = await copyBlobs(
      { name: 'snap/a', registry: 'r.example', openBlob: async () => Readable.from([]) },
      [blob(1), blob(2)],
      repo,
      { concurrency: 1 },
    );
    expect(how).toEqual({ present: 1, mounted: 1, copied: 0 });
    expect(repo.counts).toEqual({ present: 1, mounted: 1, sent: 0, bytes: 0 });
    expect(await repo.landed(stored.digest)).toBe(true); // a check after an upload is not a skip
    expect(repo.counts.present).toBe(1);
    // @ts-expect-error read-only
    repo.counts.present = 5;
    expect(() => {
      // @ts-expect-error read-only
      repo.uploaded = 5;
    }).toThrow(TypeError);
    expect(repo.counts).toEqual({ present: 1, mounted: 1, sent: 0, bytes: 0 });
  });
});
