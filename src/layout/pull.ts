import { copyImage, copyReferrers } from '../content/copy.js';
import type { Descriptor } from '../content/oci.js';
import type { ImageSource } from '../content/storage.js';
import type { Logger } from '../log.js';
import type { LayoutWriter } from './layout.js';

/**
 * Fetches an image into an OCI layout on disk, every blob checked against its digest, with the
 * artifacts about it (its referrers), listed in `index.json` beside it.
 */
export async function pullToLayout(
  source: ImageSource,
  reference: string,
  layout: LayoutWriter,
  tag: string,
  opts: { concurrency: number; log: Logger },
): Promise<{ digest: string; manifest: Buffer; referrers: Descriptor[] }> {
  const copied = await copyImage(source, reference, layout, [tag], opts);
  const { digest, mediaType, manifest } = copied;
  // The image is what was asked for: artifacts that cannot be read leave a warning, not a failure.
  const referrers = await copyReferrers(source, digest, layout, opts).catch((err: Error) => {
    opts.log.warn(`the artifacts about ${digest} (SBOM, provenance) were not pulled: ${err.message}`);
    return [];
  });
  await layout.finish({ mediaType, digest, size: manifest.length }, [tag]);
  return { digest, manifest, referrers };
}
