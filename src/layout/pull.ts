import { copyImage } from '../content/copy.js';
import type { ImageSource } from '../content/storage.js';
import type { LayoutWriter } from './layout.js';

/** Fetches an image into an OCI layout on disk, every blob checked against its digest. */
export async function pullToLayout(
  source: ImageSource,
  reference: string,
  layout: LayoutWriter,
  tag: string,
  opts: { concurrency: number },
): Promise<{ digest: string; manifest: Buffer }> {
  const copied = await copyImage(source, reference, layout, [tag], opts);
  const { digest, mediaType, manifest } = copied;
  await layout.finish({ mediaType, digest, size: manifest.length }, [tag]);
  return { digest, manifest };
}
