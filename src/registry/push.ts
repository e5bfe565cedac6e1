import type { Logger } from '../log.js';
import type { BuiltImage, NewLayer } from '../image/build.js';
import { storedManifest, type Artifact } from '../attest/artifact.js';
import type { Manifest } from '../content/oci.js';
import { FINGERPRINT_ANNOTATION } from '../layer/fingerprint.js';
import type { BlobSink } from '../content/blob.js';
import { copyBlobs } from '../content/copy.js';
import { describeExisting, upToDateIn, type ExistingImage, type UpToDate } from '../content/existing.js';
import { Repository } from './repository.js';
import { connect } from './connect.js';
import type { CredentialInputs } from './credentials.js';
import { getImageConfig, getManifest, parseJson, putManifest } from './manifests.js';
import { format, type Target } from './reference.js';
import { LayerCache } from './layer-cache.js';
import { DeadlineError } from './retry.js';
import type { BaseImage } from './base.js';

export interface PushOptions {
  /** Every target in one registry, in any of its repositories. */
  targets: [Target, ...Target[]];
  credentials: CredentialInputs;
  insecureRegistry: boolean;
  log: Logger;
  /** Shared by the destinations of one run. @default loaded from LayerCache.defaultPath() */
  cache?: LayerCache;
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
 * Pushes an image to one registry: blobs first to the first target's repository (present ones
 * skipped), then mounted into its other repositories, the config, and last the manifest once per tag,
 * so a tag only ever points at an image whose every blob is in its repository.
 */
export class RegistryDestination {
  private existing: Existing | null = null;
  /** Bytes sent for the image once its manifests are in: what follows (attestations) is not the image. */
  private imageBytes: number | null = null;
  /** Layers written by this push, to remember in the cache once the manifest is in. */
  private readonly written = new Map<string, NewLayer>();
  /** The references tagged so far, in order. */
  readonly pushed: Target[] = [];
  /** Every repository pushed to, the first one's first: they share its client (and its tokens). */
  private readonly repos: Map<string, Repository>;

  private constructor(
    readonly repo: Repository,
    readonly targets: [Target, ...Target[]],
    private readonly log: Logger,
    private readonly cache: LayerCache,
  ) {
    this.repos = new Map([[repo.name, repo]]);
    for (const t of targets)
      if (!this.repos.has(t.repository))
        this.repos.set(t.repository, new Repository(repo.client, t.repository));
  }

  static async open(opts: PushOptions): Promise<RegistryDestination> {
    const first = opts.targets[0];
    const repo = await connect(first, {
      credentials: opts.credentials,
      insecureRegistry: opts.insecureRegistry,
      access: 'push',
      log: opts.log,
    });
    const cache = opts.cache ?? (await LayerCache.load());
    const dest = new RegistryDestination(repo, opts.targets, opts.log, cache);
    await dest.readExisting();
    return dest;
  }

  get registry(): string {
    return this.targets[0].registry;
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

  /**
   * The image every tag of this registry holds, in every repository, when they all hold the same one
   * and it satisfies `want`; else null.
   */
  async upToDate(want: UpToDate): Promise<ExistingImage | null> {
    const here = this.targets.filter((t) => t.repository === this.repo.name).map((t) => t.tag);
    const image = await upToDateIn(this.repo, here, want, this.existing?.image ?? null);
    if (!image) return null;
    for (const t of this.targets.filter((t) => t.repository !== this.repo.name)) {
      const repo = this.repos.get(t.repository)!;
      if ((await getManifest(repo, t.tag))?.digest !== image.digest) return null;
    }
    return image;
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
   * skipped when there, mounted from the base's repository on the same registry (or from another
   * place in this registry its marker names), else streamed blob to blob from the base's registry.
   */
  async addBase(base: BaseImage, concurrency: number): Promise<void> {
    const local = base.places?.find(
      (p) => p.registry === this.registry && p.registry !== base.reference.registry,
    );
    if (local) {
      // Read with this registry's client: the place is in this registry, the run may pull from it.
      const place = new Repository(this.repo.client, local.repository, 'pull');
      try {
        const how = await copyBlobs(place, base.layers, this.repo, { concurrency });
        this.log.info(
          `base layers: ${how.present} already there, ${how.mounted} mounted from ${place.name}, ${how.copied} copied`,
        );
        return;
      } catch (err) {
        if (err instanceof DeadlineError) throw err;
        this.log.info(
          `base layers: ${format(local)} cannot give them (${(err as Error).message}); reading ${base.name}`,
        );
      }
    }
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

  /** Bytes of the image sent to every repository of this registry: its attestations are not counted. */
  get uploaded(): number {
    return this.imageBytes ?? this.bytesSent();
  }

  private bytesSent(): number {
    return [...this.repos.values()].reduce((n, r) => n + r.uploaded, 0);
  }

  /**
   * The config, every blob mounted into the other repositories (skipped when there, copied if the
   * registry declines the mount), then the manifest under each tag; the layer cache is saved by the
   * caller (saveCache), once for every registry of the run.
   */
  async finish(image: BuiltImage, concurrency: number): Promise<void> {
    await this.repo.putBuffer(image.config.descriptor, image.config.bytes); // skipped when present
    const manifest = parseJson<Manifest>(image.manifest.bytes);
    const blobs = [manifest.config, ...manifest.layers];
    for (const other of [...this.repos.values()].slice(1)) {
      const how = await copyBlobs(this.repo, blobs, other, { concurrency });
      this.log.info(
        `${this.registry}/${other.name}: ${how.present} blobs already there, ${how.mounted} mounted from ${this.repo.name}, ${how.copied} copied`,
      );
    }
    for (const t of this.targets) {
      const repo = this.repos.get(t.repository)!;
      await putManifest(repo, t.tag, image.manifest.bytes, image.manifest.descriptor.mediaType);
      this.pushed.push(t);
      this.log.info(`pushed ${format(t)}`);
    }
    for (const [fp, layer] of this.written)
      for (const repo of this.repos.values()) this.cache.remember(fp, layer, `${this.registry}/${repo.name}`);
    this.imageBytes = this.bytesSent();
  }

  /**
   * Each artifact's blobs, then its manifest, listed as a referrer of the image (referrers API or tag
   * schema) in every repository of this registry: uploaded to the first, mounted into the others. The
   * image is pushed already: an artifact a repository refuses is one warning, and left out of what
   * this returns.
   */
  async attach(subject: string, artifacts: Artifact[], concurrency: number): Promise<Artifact[]> {
    const attached: Artifact[] = [];
    for (const artifact of artifacts) {
      let everywhere = true;
      for (const repo of this.repos.values()) {
        const name = `${this.registry}/${repo.name}`;
        try {
          if (repo === this.repo)
            for (const blob of artifact.blobs) await repo.putBuffer(blob.descriptor, blob.bytes);
          else
            await copyBlobs(
              this.repo,
              artifact.blobs.map((b) => b.descriptor),
              repo,
              { concurrency },
            );
          const how = await repo.putReferrers(subject, [storedManifest(artifact)]);
          this.log.info(
            `attached the ${artifact.kind} (${artifact.manifest.descriptor.digest}) to ${name} through the ${how}`,
          );
        } catch (err) {
          everywhere = false;
          // Even past the run's deadline: the image is pushed, and the outputs say what is missing.
          this.log.warn(
            `the ${artifact.kind} was not attached to ${name}@${subject}: ${(err as Error).message}`,
          );
        }
      }
      if (everywhere) attached.push(artifact);
    }
    return attached;
  }

  /** Writes the layer cache (shared by every registry of a run). */
  saveCache(): Promise<void> {
    return this.cache.save();
  }

  async abort(): Promise<void> {}
}
