import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { sha256 } from '../image/build.js';
import { Annotation, MediaType, type Descriptor, type Index, type Manifest } from '../content/oci.js';
import type { FetchedManifest, ImageSource } from '../content/storage.js';
import { LayoutError } from './layout.js';

/**
 * An OCI image layout as the source of a promote (`oci:DIR[:TAG]`, as skopeo spells it): a dry run's
 * output pushed later, as it is. Manifests are checked against their digests when read; blobs are
 * checked by the registry they are pushed to.
 */
export function layoutSource(dir: string): ImageSource {
  const blobPath = (digest: string) => {
    if (!/^sha256:[0-9a-f]{64}$/.test(digest))
      throw new LayoutError(`${dir}: "${digest}" is not a sha256 digest`);
    return path.join(dir, 'blobs', 'sha256', digest.slice(7));
  };
  const readIndex = async (): Promise<Index> => {
    try {
      return JSON.parse(await readFile(path.join(dir, 'index.json'), 'utf8')) as Index;
    } catch {
      throw new LayoutError(`${dir} is not an OCI image layout (no readable index.json)`);
    }
  };
  const source: ImageSource = {
    name: `oci:${dir}`,
    async manifest(reference) {
      const index = await readIndex();
      // Artifacts listed beside the image (its SBOM, its provenance) are no image to choose.
      const images = index.manifests.filter((d) => !d.artifactType);
      const found =
        index.manifests.find((d) => d.digest === reference) ??
        index.manifests.find((d) => d.annotations?.[Annotation.refName] === reference) ??
        (reference === 'latest' && images.length === 1 ? images[0] : undefined);
      const digest = found?.digest ?? (reference.startsWith('sha256:') ? reference : undefined);
      if (!digest) return null;
      const bytes = await readFile(blobPath(digest)).catch(() => null);
      if (!bytes) return null;
      if (sha256(bytes) !== digest)
        throw new LayoutError(`manifest ${digest} in ${dir} does not match its digest`);
      const mediaType =
        found?.mediaType ?? (JSON.parse(bytes.toString()) as { mediaType?: string }).mediaType ?? '';
      return { digest, mediaType, bytes } satisfies FetchedManifest;
    },
    /** The manifests listed in `index.json` whose `subject` is `digest`. */
    async referrers(digest) {
      const found: Descriptor[] = [];
      for (const d of (await readIndex()).manifests) {
        if (d.mediaType !== MediaType.manifest || d.digest === digest) continue;
        const m = await source.manifest(d.digest);
        const subject = m && (JSON.parse(m.bytes.toString()) as Manifest).subject;
        if (subject?.digest === digest) found.push(d);
      }
      return found;
    },
    // 1 MiB reads: a sixteenth of the reads and buffers of the default 64 KiB.
    openBlob: async (digest): Promise<Readable> =>
      createReadStream(blobPath(digest), { highWaterMark: 1024 * 1024 }),
  };
  return source;
}
