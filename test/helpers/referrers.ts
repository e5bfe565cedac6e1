// The referrers of an image as a client that knows only the distribution spec finds them: the
// referrers tag schema (`<repo>:sha256-<hex>`, an image index), each artifact manifest, its document.
// Plain HTTP requests: nothing of the action's code.
import { expect } from 'vitest';

export const INDEX = 'application/vnd.oci.image.index.v1+json';
export const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/** A registry read over plain HTTP, with basic auth when given: nothing of the action's code. */
export async function get(host: string, p: string, accept: string, creds?: { user: string; pass: string }) {
  const headers: Record<string, string> = { Accept: accept };
  if (creds) headers.Authorization = `Basic ${Buffer.from(`${creds.user}:${creds.pass}`).toString('base64')}`;
  const res = await fetch(`http://${host}${p}`, { headers });
  return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()) };
}

export interface Found {
  artifactType: string;
  manifest: {
    artifactType: string;
    subject: { digest: string };
    config: { digest: string };
    layers: Array<{ digest: string; mediaType: string }>;
  };
  document: Record<string, unknown>;
  digest: string;
}

/** The referrers of `digest` by the tag schema alone: the `sha256-<hex>` index, each manifest, its document. */
export async function referrersByTag(
  host: string,
  repo: string,
  digest: string,
  creds?: { user: string; pass: string },
) {
  const tagged = await get(host, `/v2/${repo}/manifests/${digest.replace(':', '-')}`, INDEX, creds);
  if (tagged.status === 404) return [];
  expect(tagged.status).toBe(200);
  const index = JSON.parse(tagged.bytes.toString()) as {
    mediaType: string;
    manifests: Array<{ digest: string; artifactType: string; mediaType: string }>;
  };
  expect(index.mediaType).toBe(INDEX);
  const found: Found[] = [];
  for (const d of index.manifests) {
    expect(d.mediaType).toBe(MANIFEST);
    const m = await get(host, `/v2/${repo}/manifests/${d.digest}`, MANIFEST, creds);
    const manifest = JSON.parse(m.bytes.toString()) as Found['manifest'];
    const blob = await get(host, `/v2/${repo}/blobs/${manifest.layers[0].digest}`, '*/*', creds);
    found.push({
      artifactType: d.artifactType,
      manifest,
      document: JSON.parse(blob.bytes.toString()),
      digest: d.digest,
    });
  }
  return found;
}
