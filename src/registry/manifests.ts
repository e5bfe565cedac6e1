import { sha256 } from '../image/build.js';
import { MediaType, type ImageConfig, type Manifest } from '../content/oci.js';
import type { FetchedManifest } from '../content/storage.js';
import type { RegistryClient } from './client.js';
import { NOT_A_REGISTRY, RegistryError } from './errors.js';

/** What a manifest request needs of a repository (a Repository is one). */
export interface RepositoryEndpoint {
  readonly client: RegistryClient;
  /** The repository's path. */
  readonly name: string;
  /** Its token scope. */
  readonly scope: string;
}

/** The registry's manifest size limit (distribution: 4 MiB); larger bodies are not read. */
const MANIFEST_LIMIT = 4 * 1024 * 1024;
const CONFIG_LIMIT = 8 * 1024 * 1024;

const ACCEPT = [
  MediaType.manifest,
  MediaType.dockerManifest,
  MediaType.index,
  MediaType.dockerManifestList,
].join(', ');

/** GET a manifest by tag or digest; null when the tag does not exist. */
export async function getManifest(
  repo: RepositoryEndpoint,
  reference: string,
): Promise<FetchedManifest | null> {
  const what = `reading ${repo.name}:${reference}`;
  const { res, bytes } = await repo.client.requestBytes(
    {
      method: 'GET',
      url: `/v2/${repo.name}/manifests/${reference}`,
      what,
      scopes: [repo.scope],
      ok: [200, 404],
      headers: { Accept: ACCEPT },
    },
    MANIFEST_LIMIT,
  );
  if (res.status === 404) return null;
  // Checked here, where the request can be named: every caller parses what this returns.
  if (!isJsonObject(bytes))
    throw new RegistryError(`${what}: the registry answered something that is not JSON ${NOT_A_REGISTRY}`);
  const digest = sha256(bytes);
  const claimed = res.headers.get('docker-content-digest');
  if (reference.startsWith('sha256:') && digest !== reference) {
    throw new RegistryError(`manifest ${repo.name}@${reference} does not match its digest (got ${digest})`);
  }
  if (claimed && claimed.startsWith('sha256:') && claimed !== digest) {
    throw new RegistryError(
      `manifest ${repo.name}:${reference} does not match the digest the registry claims`,
    );
  }
  const mediaType =
    (res.headers.get('content-type') ?? '').split(';')[0].trim() || parseJson<Manifest>(bytes).mediaType;
  return { digest, mediaType, bytes };
}

/** A small JSON blob (an image config), verified against its digest. */
export async function getJsonBlob<T>(repo: RepositoryEndpoint, digest: string): Promise<T> {
  const { bytes } = await repo.client.requestBytes(
    {
      method: 'GET',
      url: `/v2/${repo.name}/blobs/${digest}`,
      what: `reading blob ${digest.slice(0, 19)}`,
      scopes: [repo.scope],
      ok: [200],
    },
    CONFIG_LIMIT,
  );
  if (sha256(bytes) !== digest)
    throw new RegistryError(`blob ${digest} from ${repo.name} does not match its digest`);
  return parseJson<T>(bytes);
}

/**
 * PUT a manifest under a tag (or its digest). Done only when the registry answers with our digest;
 * any other success (a proxy or login page answers 200 for a registry it never reached, some
 * registries name no digest) is checked by reading the tag back. Returns the `OCI-Subject` the
 * registry answered (distribution-spec 1.1: it indexed the manifest's subject for the referrers API).
 */
export async function putManifest(
  repo: RepositoryEndpoint,
  tag: string,
  bytes: Buffer,
  mediaType: string,
): Promise<string | null> {
  const digest = sha256(bytes);
  const what = `tagging ${repo.name}:${tag}`;
  const res = await repo.client.request({
    method: 'PUT',
    url: `/v2/${repo.name}/manifests/${tag}`,
    what,
    scopes: [repo.scope],
    ok: [200, 201, 202, 204],
    headers: { 'Content-Type': mediaType },
    body: bytes,
  });
  const answered = res.headers.get('docker-content-digest');
  const subject = res.headers.get('oci-subject');
  await res.body?.cancel();
  if (answered && answered !== digest) {
    throw new RegistryError(`the registry stored ${repo.name}:${tag} as ${answered}, expected ${digest}`);
  }
  if (answered === digest) return subject;
  const stored = await storedDigest(repo, tag, mediaType).catch((err: Error) => {
    throw new RegistryError(
      `${what} failed: the registry answered ${res.status} without the image's digest, and reading the tag back failed: ${err.message}`,
    );
  });
  if (stored !== digest) {
    throw new RegistryError(
      `${what} failed: the registry answered ${res.status}, but the tag does not hold the image (it holds ${stored ?? 'nothing'}, not ${digest}); is a proxy or login page in the way? check the host name and port`,
    );
  }
  return subject;
}

/** The digest a tag (or digest) resolves to now: a HEAD, or a GET when the HEAD names none. */
async function storedDigest(
  repo: RepositoryEndpoint,
  reference: string,
  mediaType: string,
): Promise<string | null> {
  const res = await repo.client.request({
    method: 'HEAD',
    url: `/v2/${repo.name}/manifests/${reference}`,
    what: `reading ${repo.name}:${reference} back`,
    scopes: [repo.scope],
    ok: [200, 404],
    headers: { Accept: `${mediaType}, ${ACCEPT}` },
  });
  await res.body?.cancel();
  if (res.status === 404) return null;
  const named = res.headers.get('docker-content-digest');
  if (named?.startsWith('sha256:')) return named;
  return (await getManifest(repo, reference))?.digest ?? null;
}

export async function getImageConfig(repo: RepositoryEndpoint, manifest: Manifest): Promise<ImageConfig> {
  return getJsonBlob<ImageConfig>(repo, manifest.config.digest);
}

function isJsonObject(bytes: Buffer): boolean {
  try {
    const v: unknown = JSON.parse(bytes.toString('utf8'));
    return typeof v === 'object' && v !== null && !Array.isArray(v);
  } catch {
    return false;
  }
}

export function parseJson<T>(bytes: Buffer): T {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch {
    throw new RegistryError('the registry answered something that is not JSON');
  }
}
