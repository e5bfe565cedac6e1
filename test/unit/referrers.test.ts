import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { artifactFor, ArtifactType, storedManifest } from '../../src/attest/artifact.js';
import { MediaType } from '../../src/content/oci.js';
import { silentLogger } from '../../src/log.js';
import { RegistryClient } from '../../src/registry/client.js';
import { listReferrers, putReferrers, referrersTag } from '../../src/registry/referrers.js';
import { Repository } from '../../src/registry/repository.js';

const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const SUBJECT = { mediaType: MediaType.manifest, digest: sha256('image'), size: 100 };

/**
 * A registry of manifests in memory. `api`: it indexes subjects (answers OCI-Subject and serves
 * /referrers/), as distribution-spec 1.1 registries do; else it knows nothing of them, like 2.8.
 * `afterTagPut` runs once a tag is stored and answered: another client may write it then.
 */
async function fakeRegistry(opts: {
  api: boolean;
  afterTagPut?: (tag: string, store: (bytes: Buffer) => void) => void;
}) {
  const manifests = new Map<string, { bytes: Buffer; type: string }>();
  const indexed = new Map<string, object[]>();
  const requests: string[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push(`${req.method} ${req.url}`);
      const url = req.url ?? '';
      if (url === '/v2/') return res.writeHead(200).end();
      const referrers = /^\/v2\/r\/referrers\/(sha256:[0-9a-f]{64})$/.exec(url);
      if (referrers) {
        if (!opts.api) return res.writeHead(404).end('404 page not found');
        const index = {
          schemaVersion: 2,
          mediaType: MediaType.index,
          manifests: indexed.get(referrers[1]) ?? [],
        };
        return res.writeHead(200, { 'Content-Type': MediaType.index }).end(JSON.stringify(index));
      }
      const m = /^\/v2\/r\/manifests\/(.+)$/.exec(url);
      if (!m) return res.writeHead(404).end();
      const ref = decodeURIComponent(m[1]);
      if (req.method === 'PUT') {
        const bytes = Buffer.concat(chunks);
        const digest = sha256(bytes);
        const type = req.headers['content-type'] ?? '';
        manifests.set(ref, { bytes, type });
        manifests.set(digest, { bytes, type });
        const headers: Record<string, string> = { 'Docker-Content-Digest': digest };
        const parsed = JSON.parse(bytes.toString()) as {
          subject?: { digest: string };
          artifactType?: string;
        };
        if (opts.api && parsed.subject) {
          headers['OCI-Subject'] = parsed.subject.digest;
          const list = indexed.get(parsed.subject.digest) ?? [];
          list.push({ mediaType: type, digest, size: bytes.length, artifactType: parsed.artifactType });
          indexed.set(parsed.subject.digest, list);
        }
        res.writeHead(201, headers).end();
        if (!ref.startsWith('sha256:'))
          opts.afterTagPut?.(ref, (other) => manifests.set(ref, { bytes: other, type: MediaType.index }));
        return;
      }
      const found = manifests.get(ref);
      if (!found) return res.writeHead(404).end();
      res.writeHead(200, { 'Content-Type': found.type, 'Docker-Content-Digest': sha256(found.bytes) });
      res.end(req.method === 'HEAD' ? undefined : found.bytes);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  stops.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const client = new RegistryClient({
    registry: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    credentials: { source: 'anonymous' },
    insecure: true,
    log: silentLogger,
  });
  return { repo: new Repository(client, 'r'), manifests, requests };
}

const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
});

const sbom = artifactFor(
  SUBJECT,
  { kind: 'SBOM', artifactType: ArtifactType.cyclonedx, bytes: Buffer.from('{"a":1}') },
  '2024-01-01T00:00:00Z',
);
const provenance = artifactFor(
  SUBJECT,
  { kind: 'provenance', artifactType: ArtifactType.inToto, bytes: Buffer.from('{"b":2}') },
  '2024-01-01T00:00:00Z',
);

describe('referrers', () => {
  it('leaves them to a registry that answers OCI-Subject, and lists them through its referrers API', async () => {
    const { repo, manifests, requests } = await fakeRegistry({ api: true });
    expect(await putReferrers(repo, SUBJECT.digest, [storedManifest(sbom), storedManifest(provenance)])).toBe(
      'referrers API',
    );
    expect(manifests.has(referrersTag(SUBJECT.digest))).toBe(false); // no tag schema written
    const listed = await listReferrers(repo, SUBJECT.digest);
    expect(listed.map((d) => [d.digest, d.artifactType])).toEqual([
      [sbom.manifest.descriptor.digest, ArtifactType.cyclonedx],
      [provenance.manifest.descriptor.digest, ArtifactType.inToto],
    ]);
    expect(requests).toContain(`GET /v2/r/referrers/${SUBJECT.digest}`);
    expect(requests.filter((r) => r.includes('sha256-'))).toEqual([]);
  });

  it('keeps the sha256-<hex> index up to date for a registry without the API, keeping what others put there', async () => {
    const { repo, manifests } = await fakeRegistry({ api: false });
    const theirs = {
      mediaType: MediaType.manifest,
      digest: sha256('signature'),
      size: 5,
      artifactType: 'application/vnd.dev.cosign',
    };
    const tag = referrersTag(SUBJECT.digest);
    expect(tag).toBe(`sha256-${SUBJECT.digest.slice(7)}`);
    const existing = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: MediaType.index, manifests: [theirs] }),
    );
    manifests.set(tag, { bytes: existing, type: MediaType.index });

    expect(await putReferrers(repo, SUBJECT.digest, [storedManifest(sbom)])).toBe('referrers tag schema');
    expect(await putReferrers(repo, SUBJECT.digest, [storedManifest(sbom), storedManifest(provenance)])).toBe(
      'referrers tag schema',
    );
    const index = JSON.parse(manifests.get(tag)!.bytes.toString());
    expect(index.mediaType).toBe(MediaType.index);
    expect(index.manifests).toEqual([theirs, sbom.descriptor, provenance.descriptor]);
    expect(sbom.descriptor.annotations).toEqual({
      'org.opencontainers.image.created': '2024-01-01T00:00:00Z',
    });
    expect((await listReferrers(repo, SUBJECT.digest)).map((d) => d.digest)).toEqual([
      theirs.digest,
      sbom.manifest.descriptor.digest,
      provenance.manifest.descriptor.digest,
    ]);
    expect(await listReferrers(repo, sha256('no such image'))).toEqual([]);
  });

  it('adds its entries again when another client replaced the index right after its write', async () => {
    const other = { mediaType: MediaType.manifest, digest: sha256('other'), size: 5, artifactType: 'x/y' };
    let raced = false;
    const { repo, manifests } = await fakeRegistry({
      api: false,
      // Right after the first write, another client writes what it read before: only its own artifact.
      afterTagPut: (_tag, store) => {
        if (raced) return;
        raced = true;
        store(
          Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.index, manifests: [other] })),
        );
      },
    });
    await putReferrers(repo, SUBJECT.digest, [storedManifest(sbom)]);
    const index = JSON.parse(manifests.get(referrersTag(SUBJECT.digest))!.bytes.toString());
    expect(index.manifests.map((d: { digest: string }) => d.digest)).toEqual([
      other.digest,
      sbom.manifest.descriptor.digest,
    ]);
  });
});
