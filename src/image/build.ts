import { createHash } from 'node:crypto';
import { CREATED_BY } from './budget.js';
import {
  Annotation,
  MediaType,
  type Descriptor,
  type HistoryEntry,
  type ImageConfig,
  type Manifest,
} from '../content/oci.js';

/** A blob small enough to hold in memory: config, manifest, index. */
export interface JsonBlob {
  descriptor: Descriptor;
  bytes: Buffer;
}

export function jsonBlob(value: unknown, mediaType: string): JsonBlob {
  const bytes = Buffer.from(JSON.stringify(value));
  return { bytes, descriptor: { mediaType, digest: sha256(bytes), size: bytes.length } };
}

export function sha256(bytes: Buffer): string {
  return 'sha256:' + createHash('sha256').update(bytes).digest('hex');
}

/** Go's GOARCH names, which image configs use, from Node's. */
export function runtimePlatform(): { architecture: string; os: string; variant?: string } {
  const arch: Record<string, string> = {
    x64: 'amd64',
    ia32: '386',
    arm64: 'arm64',
    arm: 'arm',
    ppc64: 'ppc64le',
    s390x: 's390x',
    riscv64: 'riscv64',
    loong64: 'loong64',
  };
  const architecture = arch[process.arch] ?? process.arch;
  const variant = process.arch === 'arm64' ? 'v8' : process.arch === 'arm' ? 'v7' : undefined;
  return { architecture, os: 'linux', ...(variant ? { variant } : {}) };
}

export interface NewLayer {
  descriptor: Descriptor;
  diffId: string;
  /** What the layer holds, for `history`. */
  comment: string;
}

/** What a snapshot inherits from the image its sandbox started from. */
export interface BaseInput {
  name: string;
  digest: string;
  layers: Descriptor[];
  diffIds: string[];
  config: ImageConfig;
}

export interface ImageInput {
  /** The base image's layers come first, untouched, and its runtime config is inherited. */
  base?: BaseInput;
  layers: NewLayer[];
  /** RFC 3339: SOURCE_DATE_EPOCH or the newest mtime captured, never the clock (reproducible). */
  created: string;
  /** The config's `Env` (the base's, updated from the job); the base's own when not given. */
  env?: string[];
  /** `org.opencontainers.image.source` / `.revision`, when the run knows them. */
  source?: string;
  revision?: string;
  /** The user's `key`: what the image was built from, for a later run to compare (empty: none). */
  key?: string;
}

export interface BuiltImage {
  config: JsonBlob;
  manifest: JsonBlob;
}

/** Builds the config and manifest for the given layers. Same inputs, same bytes, same digests. */
export function buildImage(input: ImageInput): BuiltImage {
  const { base } = input;
  const history: HistoryEntry[] = [
    ...(base?.config.history ?? []),
    ...input.layers.map((l) => ({
      created: input.created,
      created_by: base ? CREATED_BY.changes : CREATED_BY.wholeTree,
      comment: l.comment,
    })),
  ];
  const config: ImageConfig = {
    created: input.created,
    ...runtimePlatform(),
    // Env, Cmd, Entrypoint, WorkingDir, User, Labels… as the base had them.
    config: { ...(base?.config.config ?? {}), ...(input.env?.length ? { Env: input.env } : {}) },
    rootfs: { type: 'layers', diff_ids: [...(base?.diffIds ?? []), ...input.layers.map((l) => l.diffId)] },
    history,
  };
  const configBlob = jsonBlob(config, MediaType.config);
  const annotations: Record<string, string> = { [Annotation.created]: input.created };
  if (input.source) annotations[Annotation.source] = input.source;
  if (input.revision) annotations[Annotation.revision] = input.revision;
  if (input.key) annotations[Annotation.key] = input.key;
  if (base) {
    annotations[Annotation.baseName] = base.name;
    if (base.digest) annotations[Annotation.baseDigest] = base.digest;
  }
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType: MediaType.manifest,
    config: configBlob.descriptor,
    layers: [...(base?.layers ?? []), ...input.layers.map((l) => l.descriptor)],
    annotations,
  };
  return { config: configBlob, manifest: jsonBlob(manifest, MediaType.manifest) };
}

/** RFC 3339 in UTC with the nanoseconds that matter, from seconds and nanoseconds since the epoch. */
export function rfc3339(sec: number, nsec = 0): string {
  // Dates beyond what RFC 3339 can write (a file dated year 300000) are clamped to its range.
  const clamped = Math.min(Math.max(sec, -62135596800), 253402300799);
  const base = new Date(clamped * 1000).toISOString().slice(0, 19);
  const frac = nsec ? '.' + String(nsec).padStart(9, '0').replace(/0+$/, '') : '';
  return `${base}${frac}Z`;
}
