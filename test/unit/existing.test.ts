import { describe, expect, it } from 'vitest';
import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { describeExisting, readExisting, satisfies, upToDateIn } from '../../src/content/existing.js';
import type { FetchedManifest, ImageSource } from '../../src/content/storage.js';

const sha = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex');

function manifest(annotations: Record<string, string>, config = { digest: 'sha256:' + 'c'.repeat(64) }) {
  return Buffer.from(JSON.stringify({ schemaVersion: 2, config, layers: [], annotations }));
}

/** An in-memory source: tags to manifests, digests to blobs. */
function source(tags: Record<string, Buffer>, blobs: Record<string, Buffer> = {}): ImageSource {
  return {
    name: 'mem',
    manifest: async (ref) => {
      const bytes = tags[ref];
      return bytes ? ({ digest: sha(bytes), mediaType: '', bytes } satisfies FetchedManifest) : null;
    },
    openBlob: async (digest) => Readable.from([blobs[digest]]),
  };
}

describe('whether an existing image is up to date', () => {
  const now = Date.parse('2026-01-02T00:00:00Z');
  const image = describeExisting(
    'sha256:x',
    manifest({
      'org.opencontainers.image.created': '2026-01-01T00:00:00Z',
      'dev.depot.snapshot.key': 'k1',
    }),
  );

  it('needs the same key when one is wanted, and a young enough image when max-age is given', () => {
    expect(image).toMatchObject({ key: 'k1', created: '2026-01-01T00:00:00Z' });
    expect(satisfies(image, {}, now)).toBe(true);
    expect(satisfies(image, { key: 'k1' }, now)).toBe(true);
    expect(satisfies(image, { key: 'k2' }, now)).toBe(false);
    expect(satisfies(image, { key: 'k1', maxAgeMs: 86_400_001 }, now)).toBe(true);
    expect(satisfies(image, { key: 'k1', maxAgeMs: 86_400_000 }, now)).toBe(false);
    const undated = describeExisting('sha256:y', manifest({ 'dev.depot.snapshot.key': 'k1' }));
    expect(satisfies(undated, { maxAgeMs: 1e12 }, now)).toBe(false);
    expect(satisfies(describeExisting('sha256:z', manifest({})), { key: 'k1' }, now)).toBe(false);
  });

  it('reads created from the config only when the manifest does not say', async () => {
    const config = Buffer.from(JSON.stringify({ created: '2025-05-05T00:00:00Z' }));
    const m = manifest({ 'dev.depot.snapshot.key': 'k' }, { digest: sha(config) });
    const found = await readExisting(source({ v1: m }, { [sha(config)]: config }), 'v1');
    expect(found).toMatchObject({ digest: sha(m), created: '2025-05-05T00:00:00Z', key: 'k' });
    expect(await readExisting(source({}), 'v1')).toBeNull();
  });

  it('every tag must hold the same image', async () => {
    const a = manifest({
      'dev.depot.snapshot.key': 'k',
      'org.opencontainers.image.created': '2026-01-01T00:00:00Z',
    });
    const b = manifest({
      'dev.depot.snapshot.key': 'k',
      'org.opencontainers.image.created': '2026-01-01T00:00:01Z',
    });
    expect((await upToDateIn(source({ v1: a, v2: a }), ['v1', 'v2'], { key: 'k' }))?.digest).toBe(sha(a));
    expect(await upToDateIn(source({ v1: a, v2: b }), ['v1', 'v2'], { key: 'k' })).toBeNull();
    expect(await upToDateIn(source({ v1: a }), ['v1', 'v2'], { key: 'k' })).toBeNull();
    expect(await upToDateIn(source({ v1: a, v2: a }), ['v1', 'v2'], { key: 'other' })).toBeNull();
  });
});
