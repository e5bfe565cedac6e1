import { createHash } from 'node:crypto';
import { Annotation, type ImageConfig, type Manifest } from './oci.js';
import type { ImageSource } from './storage.js';

/** An image already at a tag, as far as "is it up to date?" needs to know it. */
export interface ExistingImage {
  digest: string;
  /** The manifest (or index) as stored, for the outputs and the metadata file. */
  manifest: Buffer;
  /** RFC 3339, as the image says; absent when it says nothing. */
  created?: string;
  /** The `key` annotation of the manifest; absent when it has none. */
  key?: string;
}

/** What makes an existing image good enough to stand for a new one: each only when given. */
export interface UpToDate {
  /** The image is younger than this. */
  maxAgeMs?: number;
  /** Its `key` annotation is exactly this. */
  key?: string;
}

/**
 * Whether `image` satisfies `want`: its key is the one wanted (when one is), and it is younger than
 * `maxAgeMs` (when given; an image that does not say when it was made is not young). With neither,
 * any image does.
 */
export function satisfies(image: ExistingImage, want: UpToDate, now = Date.now()): boolean {
  if (want.key && image.key !== want.key) return false;
  if (want.maxAgeMs) {
    const created = image.created ? Date.parse(image.created) : NaN;
    if (Number.isNaN(created) || now - created >= want.maxAgeMs) return false;
  }
  return true;
}

/**
 * The facts of a stored manifest: `created` from its annotation, else from its config when given;
 * `key` from its annotations. An index has no config: only its own annotations count.
 */
export function describeExisting(
  digest: string,
  manifest: Buffer,
  config?: Pick<ImageConfig, 'created'> | null,
): ExistingImage {
  const annotations = parseObject(manifest)?.annotations ?? {};
  const created = annotations[Annotation.created] || config?.created;
  const key = annotations[Annotation.key];
  return { digest, manifest, ...(created ? { created } : {}), ...(key !== undefined ? { key } : {}) };
}

/**
 * The image at `reference` in `source`, or null when there is none: one manifest read, and the
 * config only when the manifest does not say when the image was made.
 */
export async function readExisting(source: ImageSource, reference: string): Promise<ExistingImage | null> {
  const fetched = await source.manifest(reference);
  if (!fetched) return null;
  const parsed = parseObject(fetched.bytes);
  const config = parsed?.config;
  const needsConfig = !parsed?.annotations?.[Annotation.created] && config?.digest;
  const configJson = needsConfig ? await readSmallBlob(source, config.digest).catch(() => null) : null;
  return describeExisting(fetched.digest, fetched.bytes, configJson as ImageConfig | null);
}

/**
 * Whether every one of `references` in `source` holds the same image, and that image satisfies
 * `want`: that image, else null. `first` is the image at `references[0]`, when already read.
 */
export async function upToDateIn(
  source: ImageSource,
  references: string[],
  want: UpToDate,
  first?: ExistingImage | null,
): Promise<ExistingImage | null> {
  const [head, ...rest] = references;
  const image = first !== undefined ? first : await readExisting(source, head);
  if (!image || !satisfies(image, want)) return null;
  for (const ref of rest) {
    if ((await source.manifest(ref))?.digest !== image.digest) return null;
  }
  return image;
}

/** A config-sized blob, checked against its digest; at most 8 MiB are read. */
async function readSmallBlob(source: ImageSource, digest: string): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of await source.openBlob(digest)) {
    size += (chunk as Buffer).length;
    if (size > 8 * 1024 * 1024) throw new Error(`blob ${digest} is too large for a config`);
    chunks.push(chunk as Buffer);
  }
  const bytes = Buffer.concat(chunks);
  if ('sha256:' + createHash('sha256').update(bytes).digest('hex') !== digest)
    throw new Error(`blob ${digest} does not match its digest`);
  return JSON.parse(bytes.toString('utf8'));
}

function parseObject(bytes: Buffer): Partial<Manifest> | null {
  try {
    const v: unknown = JSON.parse(bytes.toString('utf8'));
    return typeof v === 'object' && v !== null ? (v as Partial<Manifest>) : null;
  } catch {
    return null;
  }
}
