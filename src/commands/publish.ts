import { ArtifactType } from '../attest/artifact.js';
import type { Descriptor } from '../content/oci.js';
import { describeManifest, setupMetadata, writeMetadata } from '../metadata.js';
import { group, publishSummary, setOutputs } from '../runner.js';
import { markdownReport, textReport, type SnapshotReport } from '../summary.js';

/** One log group per phase, timed for the summary; `quiet` keeps groups out of the log. */
export class Phases {
  readonly timings: Array<{ name: string; ms: number }> = [];
  readonly startedAt = Date.now();

  /** `onEnd` runs after each phase, even a failed one (the progress line stops). */
  constructor(
    private readonly quiet: boolean,
    private readonly onEnd: () => void = () => {},
  ) {}

  async run<T>(name: string, title: string, fn: () => Promise<T>): Promise<T> {
    const started = Date.now();
    try {
      return await (this.quiet ? fn() : group(title, fn));
    } finally {
      this.onEnd();
      this.timings.push({ name, ms: Date.now() - started });
    }
  }

  get totalMs(): number {
    return this.timings.reduce((n, p) => n + p.ms, 0);
  }
}

/** What a command made, for the metadata file and the outputs. */
export interface Result {
  operation: 'snapshot' | 'promote' | 'pull';
  digest: string;
  /** The manifest (or index) as stored: the config, layers and size are read from it. */
  manifest: Buffer;
  /** `registry/repository:tag` for each tag written; none for a layout. */
  images: string[];
  tags: string[];
  /** The outputs naming where the image is. */
  where: { image: string } | { output: string } | Record<string, never>;
  uploaded: number;
  base: { name: string; digest: string | null } | null;
  /** How changes were found (snapshot only). */
  changes: string | null;
  durationMs: number;
  /** The image's `key` annotation, null when it has none. */
  key: string | null;
  /** A snapshot found an up-to-date image and captured nothing. */
  skipped: boolean;
  /** Which runtime the image was loaded into, and under what name (pull with `load`). */
  loaded?: { runtime: string; image: string };
  /** The artifacts now listed as referrers of the image: attached by a snapshot, copied by promote or pull. */
  referrers: Descriptor[];
}

/**
 * The end of every command: the metadata file (when asked for), the job summary or closing report
 * (for a snapshot), and the outputs, last, so a later step never reads outputs of a run that failed.
 */
export async function publishResult(
  result: Result,
  opts: { metadataFile: string; quiet: boolean; report?: SnapshotReport; skipped?: string },
): Promise<void> {
  const described = describeManifest(result.manifest, result.digest);
  if (opts.metadataFile) {
    await writeMetadata(opts.metadataFile, {
      schemaVersion: 1,
      operation: result.operation,
      images: result.images,
      output: 'output' in result.where ? result.where.output : null,
      ...described,
      uploaded: result.uploaded,
      base: result.base,
      changes: result.changes,
      durationMs: result.durationMs,
      key: result.key,
      skipped: result.skipped,
      ...(result.loaded ? { loaded: result.loaded } : {}),
      ...(opts.report?.setup ? { setup: setupMetadata(opts.report.setup) } : {}),
      referrers: result.referrers.map((d) => ({ digest: d.digest, artifactType: d.artifactType ?? '' })),
    });
  }
  if (opts.report) await publishSummary(markdownReport(opts.report), textReport(opts.report), opts.quiet);
  if (opts.skipped)
    await publishSummary(
      `## Snapshot skipped\n\n${opts.skipped}\n`,
      `Snapshot skipped: ${opts.skipped}`,
      opts.quiet,
    );
  setOutputs({
    digest: result.digest,
    ...result.where,
    images: result.images.join(','),
    tags: result.tags.join(','),
    size: described.size,
    uploaded: result.uploaded,
    layers: described.layers.length,
    ...(result.changes ? { changes: result.changes } : {}),
    ...(result.loaded ? { loaded: result.loaded.image } : {}),
    skipped: result.skipped,
    'sbom-digest': referrerOf(result.referrers, ArtifactType.cyclonedx),
    'provenance-digest': referrerOf(result.referrers, ArtifactType.inToto),
  });
}

/** The digest of the first referrer of this type, '' when there is none. */
function referrerOf(referrers: Descriptor[], artifactType: string): string {
  return referrers.find((d) => d.artifactType === artifactType)?.digest ?? '';
}
