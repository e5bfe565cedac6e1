import type { Logger } from '../log.js';
import type { BuiltImage, NewLayer } from '../image/build.js';
import { storedManifest, type Artifact } from '../attest/artifact.js';
import type { Manifest } from '../content/oci.js';
import { FINGERPRINT_ANNOTATION } from '../layer/fingerprint.js';
import type { BlobSink } from '../content/blob.js';
import { copyBlobs } from '../content/copy.js';
import { describeExisting, upToDateIn, type ExistingImage, type UpToDate } from '../content/existing.js';
import type { Repository } from './repository.js';
import { connect } from './connect.js';
import type { CredentialInputs } from './credentials.js';
import { getImageConfig, getManifest, parseJson, putManifest } from './manifests.js';
import { format, type Target } from './reference.js';
import { LayerCache } from './layer-cache.js';
import type { BaseImage } from './base.js';

export interface PushOptions {
  targets: [Target, ...Target[]];
  credentials: CredentialInputs;
  insecureRegistry: boolean;
  log: Logger;
  /** @default LayerCache.defaultPath() */
  cacheFile?: string;
}

/**
 * What is already at the first tag: its layers by fingerprint (to skip re-reading), and what says
 * whether it is up to date. Its blobs are not taken to be in the repository: registries evict and
 * collect garbage under a tag, so each is checked (one HEAD) before it is reused.
 */
interface Existing {
  image: ExistingImage;
  layers: Map<string, NewLayer>;
}

/**
 * Pushes an image to one repository: blobs first (present ones skipped), config, then the manifest
 * once per tag, so a tag only ever points at an image whose every blob is in place.
 */
export class RegistryDestination {
  private existing: Existing | null = null;
  /** Bytes sent for the image once its manifest is in: what follows (attestations) is not the image. */
  private imageBytes: number | null = null;
  /** Layers written by this push, to remember in the cache once the manifest is in. */
  private readonly written = new Map<string, NewLayer>();

  private constructor(
    readonly repo: Repository,
    private readonly targets: [Target, ...Target[]],
    private readonly log: Logger,
    private readonly cache: LayerCache,
  ) {}

  static async open(opts: PushOptions): Promise<RegistryDestination> {
    const first = opts.targets[0];
    const repo = await connect(first, {
      credentials: opts.credentials,
      insecureRegistry: opts.insecureRegistry,
      access: 'push',
      log: opts.log,
    });
    const cache = await LayerCache.load(opts.cacheFile);
    const dest = new RegistryDestination(repo, opts.targets, opts.log, cache);
    await dest.readExisting();
    return dest;
  }

  get cacheFile(): string {
    return this.cache.file;
  }

  get image(): string {
    const t = this.targets[0];
    return `${t.registry}/${t.repository}`;
  }

  /** The image at the first tag now, if it was made by this action: how old, and its layers. */
  private async readExisting(): Promise<void> {
    const tag = this.targets[0].tag;
    const fetched = await getManifest(this.repo, tag);
    if (!fetched) return;
    const manifest = parseJson<Manifest>(fetched.bytes);
    if (!Array.isArray(manifest.layers) || !manifest.config) {
      // An index, or not an image: nothing to reuse, but it is what the tag holds.
      this.existing = { image: describeExisting(fetched.digest, fetched.bytes), layers: new Map() };
      return;
    }
    const config = await getImageConfig(this.repo, manifest).catch(() => null);
    const layers = new Map<string, NewLayer>();
    manifest.layers.forEach((d, i) => {
      const fp = d.annotations?.[FINGERPRINT_ANNOTATION];
      const diffId = config?.rootfs?.diff_ids?.[i];
      if (fp && diffId)
        layers.set(fp, {
          descriptor: d,
          diffId,
          comment: config?.history?.filter((h) => !h.empty_layer)[i]?.comment ?? '',
        });
    });
    this.existing = { image: describeExisting(fetched.digest, fetched.bytes, config), layers };
  }

  /** The image every tag holds, when they all hold the same one and it satisfies `want`; else null. */
  upToDate(want: UpToDate): Promise<ExistingImage | null> {
    const tags = this.targets.map((t) => t.tag);
    return upToDateIn(this.repo, tags, want, this.existing?.image ?? null);
  }

  /**
   * A layer with this fingerprint that the repository has (one HEAD says so), or can mount from a
   * sibling repository this machine pushed it to: reused without reading a byte of the tree.
   */
  async reuse(
    fingerprint: string,
  ): Promise<{ layer: NewLayer; how: 'already there' | 'mounted' } | undefined> {
    const cached = this.cache.get(fingerprint);
    const layer = this.existing?.layers.get(fingerprint) ?? cached?.layer;
    if (!layer) return undefined;
    const digest = layer.descriptor.digest;
    let how: 'already there' | 'mounted' = 'already there';
    if (!(await this.repo.exists(digest))) {
      const registry = this.targets[0].registry;
      const sources = (cached?.repositories ?? [])
        .filter((r) => r.startsWith(registry + '/') && r !== this.image)
        .map((r) => r.slice(registry.length + 1));
      let mounted = false;
      for (const from of sources) {
        if ((mounted = await this.repo.mount(digest, from))) break;
      }
      if (!mounted) {
        this.log.info(
          `layer ${digest.slice(0, 19)} is no longer in ${this.image} (evicted or garbage-collected?): writing it again`,
        );
        return undefined;
      }
      how = 'mounted';
    }
    this.written.set(fingerprint, layer);
    return { layer, how };
  }

  /**
   * Makes the base image's layers present in the target repository without recompressing them:
   * skipped when there, mounted from the base's repository on the same registry, else streamed
   * blob to blob from the base's registry.
   */
  async addBase(base: BaseImage, concurrency: number): Promise<void> {
    const how = await copyBlobs(base.repository, base.layers, this.repo, { concurrency });
    this.log.info(
      `base layers: ${how.present} already there, ${how.mounted} mounted from ${base.repository.name}, ${how.copied} copied`,
    );
  }

  /** Whether the repository holds a blob now (one HEAD). */
  async exists(digest: string): Promise<boolean> {
    return this.repo.exists(digest);
  }

  /** Notes a layer written by this push, for the cache. */
  wrote(fingerprint: string, layer: NewLayer): void {
    this.written.set(fingerprint, layer);
  }

  /** Where a layer goes up; `label` names it in messages ("layer 2/5 /usr"). */
  sink(label?: string): BlobSink {
    return this.repo.sink(label);
  }

  /** Config, the manifest under each tag, then the artifacts about it (see attach). */
  async finish(image: BuiltImage, artifacts: Artifact[]): Promise<Artifact[]> {
    await this.repo.putBuffer(image.config.descriptor, image.config.bytes); // skipped when present
    for (const t of this.targets) {
      await putManifest(this.repo, t.tag, image.manifest.bytes, image.manifest.descriptor.mediaType);
      this.log.info(`pushed ${format(t)}`);
    }
    for (const [fp, layer] of this.written) this.cache.remember(fp, layer, this.image);
    await this.cache.save();
    this.imageBytes = this.repo.uploaded;
    return this.attach(image.manifest.descriptor.digest, artifacts);
  }

  /** Bytes sent for the image's blobs: the attestations of a finished push are not counted. */
  get uploaded(): number {
    return this.imageBytes ?? this.repo.uploaded;
  }

  /**
   * Each artifact's blobs, then its manifest, listed as a referrer of the image (referrers API or tag
   * schema). The image is pushed already: an artifact the registry refuses is one warning, and left
   * out of what this returns.
   */
  private async attach(subject: string, artifacts: Artifact[]): Promise<Artifact[]> {
    const attached: Artifact[] = [];
    for (const artifact of artifacts) {
      try {
        for (const blob of artifact.blobs) await this.repo.putBuffer(blob.descriptor, blob.bytes);
        const how = await this.repo.putReferrers(subject, [storedManifest(artifact)]);
        this.log.info(
          `attached the ${artifact.kind} (${artifact.manifest.descriptor.digest}) through the ${how}`,
        );
        attached.push(artifact);
      } catch (err) {
        // Even past the run's deadline: the image is pushed, and the outputs say what is missing.
        this.log.warn(
          `the ${artifact.kind} was not attached to ${this.image}@${subject}: ${(err as Error).message}`,
        );
      }
    }
    return attached;
  }

  async abort(): Promise<void> {}
}
