/** OCI image-spec v1.1 types and media types: plain data, no IO. */

export const MediaType = {
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  index: 'application/vnd.oci.image.index.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layerTar: 'application/vnd.oci.image.layer.v1.tar',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  layerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  /** The config of an artifact that has none (image-spec 1.1): the two bytes `{}`. */
  empty: 'application/vnd.oci.empty.v1+json',
} as const;

export const Annotation = {
  created: 'org.opencontainers.image.created',
  source: 'org.opencontainers.image.source',
  revision: 'org.opencontainers.image.revision',
  refName: 'org.opencontainers.image.ref.name',
  baseName: 'org.opencontainers.image.base.name',
  baseDigest: 'org.opencontainers.image.base.digest',
  /** What the image was built from, as the user's `key` input names it (this action's namespace). */
  key: 'dev.depot.snapshot.key',
} as const;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  /** An artifact's type, on the descriptors of a referrers list (image-spec 1.1). */
  artifactType?: string;
  annotations?: Record<string, string>;
  platform?: Platform;
}

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
}

export interface HistoryEntry {
  created?: string;
  created_by?: string;
  comment?: string;
  empty_layer?: boolean;
}

export interface ImageConfig {
  created?: string;
  architecture: string;
  os: string;
  variant?: string;
  config?: {
    Env?: string[];
    Cmd?: string[];
    Entrypoint?: string[];
    WorkingDir?: string;
    User?: string;
    Labels?: Record<string, string>;
  };
  rootfs: { type: 'layers'; diff_ids: string[] };
  history?: HistoryEntry[];
}

export interface Manifest {
  schemaVersion: 2;
  mediaType: string;
  /** Set on an artifact (an SBOM, a provenance statement): what kind it is. */
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  /** The manifest this one is about: an artifact is a referrer of its subject (image-spec 1.1). */
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface Index {
  schemaVersion: 2;
  mediaType: string;
  manifests: Descriptor[];
}

/** A referrers-list descriptor for a stored artifact manifest: its `artifactType` and annotations. */
export function referrerDescriptor(digest: string, bytes: Buffer, mediaType: string): Descriptor {
  const m = JSON.parse(bytes.toString('utf8')) as Partial<Manifest>;
  // image-spec: artifactType, else the config's media type.
  const artifactType = m.artifactType ?? m.config?.mediaType;
  return {
    mediaType,
    digest,
    size: bytes.length,
    ...(artifactType ? { artifactType } : {}),
    ...(m.annotations ? { annotations: m.annotations } : {}),
  };
}
