import { Annotation, MediaType, type Descriptor, type Manifest } from '../content/oci.js';
import type { FetchedManifest } from '../content/storage.js';
import { jsonBlob, sha256, type JsonBlob } from '../image/build.js';

/** What an attestation is, as its artifact's `artifactType` and its one layer's media type. */
export const ArtifactType = {
  cyclonedx: 'application/vnd.cyclonedx+json',
  inToto: 'application/vnd.in-toto+json',
} as const;

/** A document to attach to an image: an SBOM, a provenance statement. */
export interface Document {
  /** What it is called in messages: `SBOM`, `provenance`. */
  kind: string;
  artifactType: string;
  bytes: Buffer;
}

/**
 * An OCI 1.1 artifact about an image: its manifest (whose `subject` is the image's manifest), the
 * blobs that manifest names (the empty config and the document), and the descriptor a referrers list
 * gives it.
 */
export interface Artifact {
  kind: string;
  artifactType: string;
  manifest: JsonBlob;
  blobs: JsonBlob[];
  /** The manifest's descriptor with its `artifactType` and annotations, as referrers lists carry it. */
  descriptor: Descriptor;
}

/** The empty config of an artifact without one (image-spec 1.1 "Guidance for an empty descriptor"). */
export function emptyConfig(): JsonBlob {
  const bytes = Buffer.from('{}');
  return { bytes, descriptor: { mediaType: MediaType.empty, digest: sha256(bytes), size: bytes.length } };
}

/** The artifact manifest of `document` about the image manifest `subject`. Same input, same bytes. */
export function artifactFor(subject: Descriptor, document: Document, created: string): Artifact {
  const config = emptyConfig();
  const layer: JsonBlob = {
    bytes: document.bytes,
    descriptor: {
      mediaType: document.artifactType,
      digest: sha256(document.bytes),
      size: document.bytes.length,
    },
  };
  const annotations = { [Annotation.created]: created };
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType: MediaType.manifest,
    artifactType: document.artifactType,
    config: config.descriptor,
    layers: [layer.descriptor],
    // Only what identifies the subject: its annotations would make the artifact's digest depend on them.
    subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
    annotations,
  };
  const blob = jsonBlob(manifest, MediaType.manifest);
  return {
    kind: document.kind,
    artifactType: document.artifactType,
    manifest: blob,
    blobs: [config, layer],
    descriptor: { ...blob.descriptor, artifactType: document.artifactType, annotations },
  };
}

/** The artifact's manifest as a store takes it. */
export function storedManifest(artifact: Artifact): FetchedManifest {
  const { digest, mediaType } = artifact.manifest.descriptor;
  return { digest, mediaType, bytes: artifact.manifest.bytes };
}
