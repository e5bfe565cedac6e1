import { rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Manifest } from './content/oci.js';
import type { Package } from './inventory/inventory.js';
import type { SetupReport } from './summary.js';

/**
 * The metadata file (`metadata-file`), like `depot build --metadata-file`: what was made, where it
 * went, how. Its JSON Schema is metadata.schema.json at the top of the repository.
 */
export interface Metadata {
  schemaVersion: 1;
  /** `snapshot`, `promote` or `pull` (a lookup writes no metadata file). */
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
  /** The image's `dev.depot.snapshot.key` annotation, null when it has none. */
  key: string | null;
  /** True when a snapshot found its tags up to date and captured nothing. */
  skipped: boolean;
  /** pull with `load`: the runtime that took the image and the name it has there. */
  loaded?: { runtime: string; image: string };
  /** What the setup steps installed (snapshot only): the job summary's "What setup changed". */
  setup?: MetadataSetup;
}

/** A package as the metadata file lists it. */
export interface MetadataPackage {
  name: string;
  version: string;
  arch?: string;
  purl: string;
}

export interface MetadataSetup {
  before: SetupReport['before'];
  /** Packages per ecosystem the image holds. */
  counts: SetupReport['counts'];
  /** Per ecosystem that changed; empty without a before-state. */
  ecosystems: Record<
    string,
    {
      added: MetadataPackage[];
      removed: MetadataPackage[];
      upgraded: Array<{ name: string; arch?: string; from: string; to: string; purl: string }>;
    }
  >;
  /** Null when the PATH before is not known. */
  path: { gained: string[]; lost: string[] } | null;
}

/** The report's setup section as the metadata file carries it. */
export function setupMetadata(s: SetupReport): MetadataSetup {
  const brief = (p: Package): MetadataPackage => ({
    name: p.name,
    version: p.version,
    ...(p.arch ? { arch: p.arch } : {}),
    purl: p.purl,
  });
  const ecosystems: MetadataSetup['ecosystems'] = {};
  for (const [e, c] of Object.entries(s.ecosystems ?? {})) {
    ecosystems[e] = {
      added: c.added.map(brief),
      removed: c.removed.map(brief),
      upgraded: c.upgraded.map((u) => ({
        name: u.to.name,
        ...(u.to.arch ? { arch: u.to.arch } : {}),
        from: u.from.version,
        to: u.to.version,
        purl: u.to.purl,
      })),
    };
  }
  return { before: s.before, counts: s.counts, ecosystems, path: s.path };
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
