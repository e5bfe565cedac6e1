/**
 * What images are copied from and to, as interfaces only: a registry repository (registry/) and an OCI
 * layout (layout/) each implement them, and content/copy.ts moves images between any two.
 */
import type { Readable } from 'node:stream';
import type { Descriptor } from './oci.js';

/** A manifest (or index) as stored: its bytes untouched, so its digest stays the same. */
export interface FetchedManifest {
  digest: string;
  mediaType: string;
  bytes: Buffer;
}

/** Where blobs are read from. */
export interface BlobSource {
  /** For messages, and for a mount: the repository's path, or `oci:DIR`. */
  readonly name: string;
  /** The registry host, for a repository: a copy within one registry can mount instead of sending. */
  readonly registry?: string;
  openBlob(digest: string): Promise<Readable>;
}

/** Where an image is read from: a registry repository, or an OCI layout on disk. */
export interface ImageSource extends BlobSource {
  /** A manifest by tag or digest; null when there is none. */
  manifest(reference: string): Promise<FetchedManifest | null>;
  /** The artifacts (SBOM, provenance, signatures) whose `subject` is the manifest `digest`. */
  referrers?(digest: string): Promise<Descriptor[]>;
}

/** What a target did with the blobs it was given: kept by the target, read-only to everyone else. */
export interface BlobCounts {
  /** Already there: not sent. */
  readonly present: number;
  /** Mounted from another repository of the same registry: not sent. */
  readonly mounted: number;
  /** Sent whole: uploaded to a registry, written into a layout. */
  readonly sent: number;
  /** Bytes sent in blob bodies (a resumed upload counts what it sent again). */
  readonly bytes: number;
}

/** Where blobs are written. `exists` and `mount` are there when the target can do them. */
export interface BlobTarget {
  readonly name: string;
  /** The registry host, for a repository. */
  readonly registry?: string;
  /** Whether the target holds the blob already, so it need not be sent (counted as present then). */
  exists?(digest: string): Promise<boolean>;
  /** A mount from another repository `from` of the same registry; false when the registry declines. */
  mount?(digest: string, from: string): Promise<boolean>;
  /** Streams the blob from `source`, checked against the descriptor's digest and size. */
  copyFrom(source: BlobSource, descriptor: Descriptor): Promise<void>;
  readonly counts: BlobCounts;
}

/** Where an image is written. */
export interface ImageTarget extends BlobTarget {
  /**
   * Stores a manifest (or index), its bytes unchanged, under `tag`, else by its digest alone; every
   * blob it names must be stored first.
   */
  putManifest(manifest: FetchedManifest, tag?: string): Promise<void>;
  /**
   * Stores artifact manifests whose `subject` is the manifest `subject` (their blobs stored first)
   * where a reader of referrers finds them; says how.
   */
  putReferrers?(subject: string, referrers: FetchedManifest[]): Promise<string>;
}
