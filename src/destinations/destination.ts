import type { Artifact } from '../attest/artifact.js';
import type { BuiltImage, NewLayer } from '../image/build.js';
import type { BlobSink } from '../content/blob.js';
import type { BaseImage } from '../registry/base.js';
import type { ExistingImage, UpToDate } from '../content/existing.js';

/**
 * Where a snapshot goes: a registry (layers uploaded) or an OCI layout on disk (a dry run). The
 * snapshot command talks to this alone; each destination decides how its blobs get there.
 */
export interface Destination {
  /** `registry/repository`, or the layout's directory: for the log, the report and the outputs. */
  readonly name: string;
  /** A registry uploads layers; a layout writes them. */
  readonly kind: 'registry' | 'layout';
  /** Paths the walk must leave out because this destination writes there. */
  readonly ownPaths: string[];
  /**
   * The image already there that makes a new one needless: returned only when every tag of this run
   * holds the same image and it satisfies `want` (its key, its age; see content/existing.ts), else
   * null. A destination that reaches several places answers for all of them.
   */
  upToDate(want: UpToDate): Promise<ExistingImage | null>;
  /** Makes the base image's layers present (skipped, mounted or copied; a layout gets them all). */
  addBase(base: BaseImage): Promise<void>;
  /** A layer already there (or mounted), found by fingerprint: reused without reading the tree. */
  reuse(fingerprint: string): Promise<{ layer: NewLayer; how: string } | undefined>;
  /** Whether a blob is already there. */
  exists(digest: string): Promise<boolean>;
  /** A layer was written under this fingerprint. */
  wrote(fingerprint: string, layer: NewLayer): void;
  /** Where one blob goes; `label` names it in messages ("layer 2/5 /usr"). */
  sink(label?: string): BlobSink;
  /**
   * Config, then the manifest under each tag: the image becomes visible only now, whole. Then the
   * artifacts about it (SBOM, provenance) as its referrers: one that cannot be attached is a warning,
   * never a failure of the image. Returns those attached.
   */
  finish(image: BuiltImage, tags: string[], artifacts: Artifact[]): Promise<Artifact[]>;
  /** Undoes what an unfinished run started (a layout's staging directory). */
  abort(): Promise<void>;
  /** Bytes of the image sent so far (0 for a layout), the attestations not counted. */
  uploaded(): number;
  /** The image's name under each tag written (`registry/repository:tag`); none for a layout. */
  images(tags: string[]): string[];
  /** The outputs naming where the image is: `image` (by digest) or `output`. */
  where(digest: string): { image: string } | { output: string };
  /**
   * Called once the result is published: throws, naming them, when some targets were not written
   * (a registry of several failed; the others hold the image).
   */
  complete(): void;
}
