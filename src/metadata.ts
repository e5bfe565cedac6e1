import { rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Manifest } from './content/oci.js';

/**
 * The metadata file (`metadata-file`), like `depot build --metadata-file`: what was made, where it
 * went, how. Its JSON Schema is metadata.schema.json at the top of the repository.
 */
export interface Metadata {
  schemaVersion: 1;
  /** `snapshot`, `promote` or `pull`. */
  operation: string;
  /** Where the image now is: `registry/repository:tag` for each tag. */
  images: string[];
  /** The OCI layout written (dry run, pull). */
  output: string | null;
  digest: string;
  mediaType: string;
  config: { digest: string; size: number } | null;
  layers: Array<{ digest: string; size: number; mediaType: string }>;
  /** Bytes of the config and layers. */
  size: number;
  uploaded: number;
  base: { name: string; digest: string | null } | null;
  changes: string | null;
  durationMs: number;
  /** Artifacts listed as referrers of the image (SBOM, provenance): attached, or copied with it. */
  referrers: Array<{ digest: string; artifactType: string }>;
}

/** What a manifest says about the image (an index has no config or layers of its own). */
export function describeManifest(
  bytes: Buffer,
  digest: string,
): Pick<Metadata, 'digest' | 'mediaType' | 'config' | 'layers' | 'size'> {
  const m = JSON.parse(bytes.toString('utf8')) as Partial<Manifest>;
  const layers = (m.layers ?? []).map((l) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType }));
  const config = m.config ? { digest: m.config.digest, size: m.config.size } : null;
  const size = layers.reduce((n, l) => n + l.size, 0) + (config?.size ?? 0);
  return { digest, mediaType: m.mediaType ?? '', config, layers, size };
}

/**
 * Written atomically: a reader never sees half a file. Its directory is not made (like docker buildx
 * `--metadata-file`): the inputs check that it exists before anything is written.
 */
export async function writeMetadata(file: string, metadata: Metadata): Promise<void> {
  const target = path.resolve(file);
  const tmp = `${target}.${process.pid}.tmp`;
  try {
    // Read by later steps, written by nobody else: never world-writable, whatever the umask.
    await writeFile(tmp, JSON.stringify(metadata, null, 2) + '\n', { mode: 0o644 });
    await rename(tmp, target);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
