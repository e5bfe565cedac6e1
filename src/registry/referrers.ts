import { MediaType, referrerDescriptor, type Descriptor, type Index } from '../content/oci.js';
import type { FetchedManifest } from '../content/storage.js';
import { RegistryError } from './errors.js';
import { getManifest, parseJson, putManifest, type RepositoryEndpoint } from './manifests.js';

/**
 * Referrers (distribution-spec 1.1): artifacts whose `subject` is an image manifest, found through
 * the registry's referrers API where it has one, else through the referrers tag schema, an image
 * index tagged `sha256-<hex>` that clients keep up to date themselves.
 */

/** The tag of the referrers tag schema for a digest: `sha256:<hex>` → `sha256-<hex>`. */
export function referrersTag(digest: string): string {
  return digest.replace(':', '-');
}

const REFERRERS_LIMIT = 4 * 1024 * 1024;

/**
 * The descriptors of the manifests whose subject is `digest`: `GET /v2/<name>/referrers/<digest>`
 * when the registry answers it with an index (a registry with the API never answers 404), else the
 * index at the `sha256-<hex>` tag (none: no referrers).
 */
export async function listReferrers(repo: RepositoryEndpoint, digest: string): Promise<Descriptor[]> {
  const { res, bytes } = await repo.client.requestBytes(
    {
      method: 'GET',
      url: `/v2/${repo.name}/referrers/${digest}`,
      what: `listing the referrers of ${repo.name}@${digest.slice(0, 19)}`,
      scopes: [repo.scope],
      // A registry without the API answers 404 (distribution 2.8), 400 or 405 to a path it has not.
      ok: [200, 400, 404, 405, 501],
      headers: { Accept: MediaType.index },
    },
    REFERRERS_LIMIT,
  );
  if (res.status === 200) {
    const index = tryParse(bytes);
    if (index) return index.manifests;
  }
  const tagged = await getManifest(repo, referrersTag(digest));
  return tagged ? (tryParse(tagged.bytes)?.manifests ?? []) : [];
}

/**
 * Stores artifact manifests about `subject` by digest (their blobs must be there already) and makes
 * them findable: a registry that answers `OCI-Subject` has indexed them; for one that does not, they
 * are added to the `sha256-<hex>` index (what others put there is kept). Returns how.
 */
export async function putReferrers(
  repo: RepositoryEndpoint,
  subject: string,
  referrers: FetchedManifest[],
): Promise<'referrers API' | 'referrers tag schema'> {
  const unindexed: Descriptor[] = [];
  for (const m of referrers) {
    const answered = await putManifest(repo, m.digest, m.bytes, m.mediaType);
    if (answered !== subject) unindexed.push(referrerDescriptor(m.digest, m.bytes, m.mediaType));
  }
  if (!unindexed.length) return 'referrers API';
  await addToTagSchema(repo, subject, unindexed);
  return 'referrers tag schema';
}

/**
 * Adds descriptors to the `sha256-<hex>` index: read, add what is missing, put back. Another writer
 * may put its own version between our read and our put: the index is read again afterwards, and
 * when ours are missing they are added once more to what is there then.
 */
async function addToTagSchema(
  repo: RepositoryEndpoint,
  subject: string,
  wanted: Descriptor[],
): Promise<void> {
  const tag = referrersTag(subject);
  for (let round = 1; ; round++) {
    const current = await readTagSchema(repo, tag);
    const missing = wanted.filter((d) => !current.manifests.some((m) => m.digest === d.digest));
    if (!missing.length) return;
    if (round > 2)
      throw new RegistryError(
        `${repo.name}:${tag}: another client kept replacing the referrers index; ${missing.length} referrer(s) not listed`,
      );
    const next: Index = { ...current, manifests: [...current.manifests, ...missing] };
    await putManifest(repo, tag, Buffer.from(JSON.stringify(next)), MediaType.index);
  }
}

async function readTagSchema(repo: RepositoryEndpoint, tag: string): Promise<Index> {
  const found = await getManifest(repo, tag);
  const empty: Index = { schemaVersion: 2, mediaType: MediaType.index, manifests: [] };
  if (!found) return empty;
  const index = tryParse(found.bytes);
  if (!index)
    throw new RegistryError(
      `${repo.name}:${tag} is not an image index: it cannot list referrers (remove or retag it)`,
    );
  return index;
}

function tryParse(bytes: Buffer): Index | null {
  try {
    const index = parseJson<Index>(bytes);
    return Array.isArray(index?.manifests) ? index : null;
  } catch {
    return null;
  }
}
