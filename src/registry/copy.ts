import type { Logger } from '../log.js';
import type { Descriptor, Index, Manifest } from '../image/oci.js';
import type { LayoutWriter } from '../layout/layout.js';
import { limiter } from '../util/limit.js';
import type { Repository } from './repository.js';
import { RegistryError } from './errors.js';
import { getManifest, parseJson, putManifest, type FetchedManifest } from './manifests.js';
import type { Readable } from 'node:stream';

/**
 * Where an image is read from: a registry repository, or an OCI layout on disk. `registry` is set
 * for a repository, so a copy within one registry can mount instead of sending.
 */
export interface ImageSource {
  name: string;
  registry?: string;
  manifest(reference: string): Promise<FetchedManifest | null>;
  openBlob(digest: string): Promise<Readable>;
}

export function registrySource(repo: Repository): ImageSource {
  return {
    name: repo.name,
    registry: repo.client.host,
    manifest: (reference) => getManifest(repo, reference),
    openBlob: (digest) => repo.openBlob(digest),
  };
}

/** An image as stored: its manifest (or index) bytes, untouched, and every blob it needs. */
interface ImageTree {
  top: FetchedManifest;
  /** Child manifests of an index, pushed by digest before the index. */
  children: FetchedManifest[];
  blobs: Descriptor[];
}

/** Reads a manifest (and, for an index, its children) and lists the blobs, config and layers. */
async function readTree(source: ImageSource, reference: string): Promise<ImageTree> {
  const top = await source.manifest(reference);
  if (!top) throw new RegistryError(`${source.name}:${reference} not found`);
  const children: FetchedManifest[] = [];
  const blobs = new Map<string, Descriptor>();
  const addImage = (m: Manifest) => {
    for (const d of [m.config, ...(m.layers ?? [])]) if (d?.digest) blobs.set(d.digest, d);
  };
  const parsed = parseJson<Manifest & Index>(top.bytes);
  if (Array.isArray(parsed.manifests)) {
    for (const d of parsed.manifests) {
      const child = await source.manifest(d.digest);
      if (!child) throw new RegistryError(`${source.name}@${d.digest}, listed in ${reference}, is missing`);
      children.push(child);
      addImage(parseJson<Manifest>(child.bytes));
    }
  } else {
    addImage(parsed);
  }
  return { top, children, blobs: [...blobs.values()] };
}

export interface CopyResult {
  digest: string;
  manifest: Buffer;
  present: number;
  mounted: number;
  copied: number;
}

/**
 * Copies an image between repositories without unpacking or recompressing anything: blobs already at
 * the destination are skipped, blobs on the same registry are mounted, others are streamed registry
 * to registry; the manifest bytes are put last, unchanged, so the digest stays the same.
 */
export async function copyImage(
  source: ImageSource,
  reference: string,
  dest: Repository,
  tags: string[],
  opts: { concurrency: number; log: Logger },
): Promise<CopyResult> {
  const tree = await readTree(source, reference);
  const sameRegistry = source.registry === dest.client.host;
  const parallel = limiter(opts.concurrency);
  const how = { present: 0, mounted: 0, copied: 0 };
  await Promise.all(
    tree.blobs.map((blob) =>
      parallel(async () => {
        if (await dest.exists(blob.digest)) how.present++;
        else if (sameRegistry && source.name !== dest.name && (await dest.mount(blob.digest, source.name)))
          how.mounted++;
        else {
          await dest.copyFrom(source, blob);
          how.copied++;
        }
      }),
    ),
  );
  for (const child of tree.children) await putManifest(dest, child.digest, child.bytes, child.mediaType);
  for (const tag of tags) await putManifest(dest, tag, tree.top.bytes, tree.top.mediaType);
  opts.log.info(`blobs: ${how.present} already there, ${how.mounted} mounted, ${how.copied} copied`);
  return { digest: tree.top.digest, manifest: tree.top.bytes, ...how };
}

/** Fetches an image into an OCI layout on disk, every blob checked against its digest. */
export async function pullToLayout(
  source: ImageSource,
  reference: string,
  layout: LayoutWriter,
  tag: string,
  opts: { concurrency: number },
): Promise<{ digest: string; manifest: Buffer }> {
  const tree = await readTree(source, reference);
  await layout.addBlobs((digest) => source.openBlob(digest), tree.blobs, opts.concurrency);
  for (const m of [...tree.children, tree.top]) {
    await layout.putJson({
      descriptor: { mediaType: m.mediaType, digest: m.digest, size: m.bytes.length },
      bytes: m.bytes,
    });
  }
  await layout.finish(
    { mediaType: tree.top.mediaType, digest: tree.top.digest, size: tree.top.bytes.length },
    [tag],
  );
  return { digest: tree.top.digest, manifest: tree.top.bytes };
}
