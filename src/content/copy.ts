import type { Descriptor, Index, Manifest } from './oci.js';
import { UserError } from '../failure.js';
import { limiter } from '../util/limit.js';
import type { BlobSource, BlobTarget, FetchedManifest, ImageSource, ImageTarget } from './storage.js';

/** An image that cannot be read as it should be: missing, or a manifest that is not one. */
export class ContentError extends UserError {}

/** How each blob of one copy got to its target. */
export interface CopyCounts {
  present: number;
  mounted: number;
  copied: number;
}

/**
 * Makes every blob present at `target`, each decided once: skipped when the target has it, mounted
 * when source and target are two repositories of one registry, else streamed from source to target
 * (which checks it against its digest). `concurrency` blobs at a time.
 */
export async function copyBlobs(
  source: BlobSource,
  blobs: Descriptor[],
  target: BlobTarget,
  opts: { concurrency: number },
): Promise<CopyCounts> {
  const canMount =
    !!target.mount && !!source.registry && source.registry === target.registry && source.name !== target.name;
  const parallel = limiter(opts.concurrency);
  const how: CopyCounts = { present: 0, mounted: 0, copied: 0 };
  await Promise.all(
    blobs.map((blob) =>
      parallel(async () => {
        if (await target.exists?.(blob.digest)) how.present++;
        else if (canMount && (await target.mount!(blob.digest, source.name))) how.mounted++;
        else {
          await target.copyFrom(source, blob);
          how.copied++;
        }
      }),
    ),
  );
  return how;
}

export interface CopyResult extends CopyCounts {
  digest: string;
  mediaType: string;
  manifest: Buffer;
}

/**
 * Copies an image without unpacking or recompressing anything: its blobs (see copyBlobs), then an
 * index's child manifests by digest, then the top manifest under each tag, its bytes unchanged, so
 * the digest stays the same and a tag only ever points at an image whose every blob is in place.
 */
export async function copyImage(
  source: ImageSource,
  reference: string,
  target: ImageTarget,
  tags: string[],
  opts: { concurrency: number; log?: { info(message: string): void } },
): Promise<CopyResult> {
  const tree = await readTree(source, reference);
  const how = await copyBlobs(source, tree.blobs, target, opts);
  for (const child of tree.children) await target.putManifest(child);
  for (const tag of tags) await target.putManifest(tree.top, tag);
  if (!tags.length) await target.putManifest(tree.top);
  opts.log?.info(`blobs: ${how.present} already there, ${how.mounted} mounted, ${how.copied} copied`);
  return { digest: tree.top.digest, mediaType: tree.top.mediaType, manifest: tree.top.bytes, ...how };
}

/**
 * Copies the artifacts about an image (SBOM, provenance, signatures: its referrers) the same way,
 * then has the target list them as referrers of `subject`. Only artifacts whose manifest names
 * `subject` are taken (a stale referrers index may list others). Returns the descriptors copied.
 */
export async function copyReferrers(
  source: ImageSource,
  subject: string,
  target: ImageTarget,
  opts: { concurrency: number },
): Promise<Descriptor[]> {
  if (!source.referrers || !target.putReferrers) return [];
  const copied: Descriptor[] = [];
  const manifests: FetchedManifest[] = [];
  for (const d of await source.referrers(subject)) {
    const tree = await readTree(source, d.digest);
    if (parseManifest<Manifest>(source, tree.top).subject?.digest !== subject) continue;
    await copyBlobs(source, tree.blobs, target, opts);
    for (const child of tree.children) await target.putManifest(child);
    manifests.push(tree.top);
    copied.push(d);
  }
  if (manifests.length) await target.putReferrers(subject, manifests);
  return copied;
}

/** An image as stored: its manifest (or index) bytes, untouched, and every blob it needs. */
interface ImageTree {
  top: FetchedManifest;
  /** Child manifests of an index, stored by digest before the index. */
  children: FetchedManifest[];
  blobs: Descriptor[];
}

/** Reads a manifest (and, for an index, its children) and lists the blobs, config and layers. */
async function readTree(source: ImageSource, reference: string): Promise<ImageTree> {
  const top = await source.manifest(reference);
  if (!top) throw new ContentError(`${source.name}:${reference} not found`);
  const children: FetchedManifest[] = [];
  const blobs = new Map<string, Descriptor>();
  const addImage = (m: Manifest) => {
    for (const d of [m.config, ...(m.layers ?? [])]) if (d?.digest) blobs.set(d.digest, d);
  };
  const parsed = parseManifest<Manifest & Index>(source, top);
  if (Array.isArray(parsed.manifests)) {
    for (const d of parsed.manifests) {
      const child = await source.manifest(d.digest);
      if (!child) throw new ContentError(`${source.name}@${d.digest}, listed in ${reference}, is missing`);
      children.push(child);
      addImage(parseManifest<Manifest>(source, child));
    }
  } else {
    addImage(parsed);
  }
  return { top, children, blobs: [...blobs.values()] };
}

function parseManifest<T>(source: ImageSource, m: FetchedManifest): T {
  try {
    return JSON.parse(m.bytes.toString('utf8')) as T;
  } catch {
    throw new ContentError(`manifest ${m.digest} of ${source.name} is not JSON`);
  }
}
