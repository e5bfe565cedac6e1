import { Readable } from 'node:stream';
import { HashTap } from '../content/blob.js';
import { ContentError } from '../content/copy.js';
import { MediaType, type Descriptor, type Index, type Manifest } from '../content/oci.js';
import type { ImageSource } from '../content/storage.js';
import { encodeHeader, END_OF_ARCHIVE, zeroPad } from '../layer/tar.js';
import { runtimePlatform } from './build.js';

/** The image a runtime can load: this platform's manifest, its config and layers. */
export interface LoadableImage {
  /** The digest of what the reference named (an index's own digest when it was one). */
  digest: string;
  manifest: Buffer;
  config: Descriptor;
  layers: Descriptor[];
}

/**
 * The image at `reference` as a runtime loads it: from an index, the entry for this platform (as
 * `docker pull` picks it). The manifests are checked against their digests by the source.
 */
export async function loadableImage(source: ImageSource, reference: string): Promise<LoadableImage> {
  const top = await source.manifest(reference);
  if (!top) throw new ContentError(`${source.name}:${reference} not found`);
  let fetched = top;
  let parsed = parse(source, fetched.bytes);
  if (Array.isArray(parsed.manifests)) {
    const want = runtimePlatform();
    const matches = parsed.manifests.filter(
      (d) => d.platform?.os === want.os && d.platform?.architecture === want.architecture,
    );
    const entry =
      matches.find((d) => !want.variant || !d.platform?.variant || d.platform.variant === want.variant) ??
      matches[0];
    if (!entry) {
      const offered = parsed.manifests.map((d) => `${d.platform?.os}/${d.platform?.architecture}`);
      throw new ContentError(
        `${source.name}:${reference} has no image for ${want.os}/${want.architecture} (it has ${offered.join(', ') || 'none'})`,
      );
    }
    const child = await source.manifest(entry.digest);
    if (!child) throw new ContentError(`${source.name}@${entry.digest}, listed in ${reference}, is missing`);
    fetched = child;
    parsed = parse(source, fetched.bytes);
  }
  if (!Array.isArray(parsed.layers) || !parsed.config?.digest)
    throw new ContentError(`${source.name}:${reference} is not an image manifest (${fetched.mediaType})`);
  return { digest: top.digest, manifest: fetched.bytes, config: parsed.config, layers: parsed.layers };
}

/** Whether any layer is zstd-compressed (which Docker before 23.0 cannot load). */
export function hasZstdLayers(image: LoadableImage): boolean {
  return image.layers.some((l) => l.mediaType === MediaType.layerZstd || l.mediaType.endsWith('+zstd'));
}

/**
 * The image as a `docker save` archive (`manifest.json`, the config, each layer as stored), streamed
 * blob by blob from `source`, never held whole in memory or on disk; `docker load` and `podman load`
 * read it. Layers go in compressed, as both decompress what they load. Each blob is checked against
 * its digest and size as it passes: a mismatch ends the stream with an error, so the runtime sees a
 * cut archive and loads nothing. `repoTag` names the image (null: loaded untagged).
 */
export function dockerArchive(source: ImageSource, image: LoadableImage, repoTag: string | null): Readable {
  const path = (d: Descriptor) => `blobs/sha256/${d.digest.slice('sha256:'.length)}`;
  const manifest = Buffer.from(
    JSON.stringify([
      { Config: path(image.config), RepoTags: repoTag ? [repoTag] : null, Layers: image.layers.map(path) },
    ]),
  );
  const blobs = new Map<string, Descriptor>();
  for (const d of [image.config, ...image.layers]) blobs.set(d.digest, d);
  return Readable.from(
    (async function* () {
      yield header('blobs', 'dir');
      yield header('blobs/sha256', 'dir');
      yield header('manifest.json', 'file', manifest.length);
      yield manifest;
      yield zeroPad(manifest.length);
      for (const d of blobs.values()) {
        if (!/^sha256:[0-9a-f]{64}$/.test(d.digest))
          throw new ContentError(`${source.name}: "${d.digest}" is not a sha256 digest`);
        yield header(path(d), 'file', d.size);
        const tap = new HashTap();
        const blob = await source.openBlob(d.digest);
        // pipe() does not pass a source's error on: without this a dropped connection is unhandled.
        blob.once('error', (err) => tap.destroy(err));
        for await (const chunk of blob.pipe(tap)) {
          if (tap.bytes > d.size) throw mismatch(source, d);
          yield chunk as Buffer;
        }
        if (tap.bytes !== d.size || tap.digest() !== d.digest) throw mismatch(source, d);
        yield zeroPad(d.size);
      }
      yield END_OF_ARCHIVE;
    })(),
    { objectMode: false },
  );
}

function mismatch(source: ImageSource, d: Descriptor): ContentError {
  return new ContentError(`blob ${d.digest} of ${source.name} does not match its digest or size`);
}

/** A header of the archive's own: root-owned, no time, so the same image gives the same archive. */
function header(name: string, type: 'file' | 'dir', size = 0): Buffer {
  return encodeHeader({
    name: Buffer.from(name),
    type,
    mode: type === 'dir' ? 0o755 : 0o644,
    uid: 0,
    gid: 0,
    size,
    mtimeSec: 0,
    mtimeNsec: 0,
  });
}

function parse(source: ImageSource, bytes: Buffer): Partial<Manifest & Index> {
  try {
    return JSON.parse(bytes.toString('utf8')) as Partial<Manifest & Index>;
  } catch {
    throw new ContentError(`a manifest of ${source.name} is not JSON`);
  }
}
