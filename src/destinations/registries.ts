import { Writable } from 'node:stream';
import type { Logger } from '../log.js';
import type { BuiltImage, NewLayer } from '../image/build.js';
import type { Artifact } from '../attest/artifact.js';
import type { BlobSink, PendingBlob } from '../content/blob.js';
import type { ExistingImage, UpToDate } from '../content/existing.js';
import type { RegistryDestination } from '../registry/push.js';
import { NotWrittenError, type RegistryFailure } from '../registry/errors.js';
import { format, type Target } from '../registry/reference.js';
import { CHUNK_SIZE } from '../registry/repository.js';
import type { Destination } from './destination.js';

/** One registry of a run: its targets, and once opened its destination, or why it failed. */
interface Place {
  registry: string;
  targets: Target[];
  dest?: RegistryDestination;
  error?: Error;
}

/**
 * A snapshot pushed to several registries at once, one RegistryDestination each (which mounts blobs
 * into its other repositories). A new layer is compressed once and its bytes go to every registry at
 * the pace of the slowest; a registry that fails is dropped and the others go on to their tags. The
 * run then fails naming the references not written (complete()); when every registry fails, with
 * the first one's error alone, as a push to one registry would.
 */
export class Registries {
  private constructor(
    private readonly places: Place[],
    private readonly opts: { concurrency: number; log: Logger },
  ) {}

  static async open(
    specs: Array<{ registry: string; targets: Target[]; open: () => Promise<RegistryDestination> }>,
    opts: { concurrency: number; log: Logger },
  ): Promise<Registries> {
    const places: Place[] = specs.map((s) => ({ registry: s.registry, targets: s.targets }));
    const registries = new Registries(places, opts);
    await registries.settle(places, async (p) => {
      p.dest = await specs[places.indexOf(p)].open();
    });
    return registries;
  }

  /** The Destination the snapshot command sees; `cacheFile` is left out of the walk. */
  destination(cacheFile: string): Destination {
    const repositories = [...new Set(this.places.flatMap((p) => p.targets.map(repositoryOf)))];
    return {
      name: repositories.join(', '),
      kind: 'registry',
      ownPaths: [cacheFile],
      upToDate: (want) => this.upToDate(want),
      addBase: async (base) => {
        await this.settle(this.live(), (p) => p.dest!.addBase(base, this.opts.concurrency));
      },
      reuse: (fp) => this.reuse(fp),
      exists: (digest) => this.exists(digest),
      wrote: (fp, layer) => this.live().forEach((p) => p.dest!.wrote(fp, layer)),
      sink: (label) => this.sink(label),
      finish: (image, _tags, artifacts) => this.finish(image, artifacts),
      abort: async () => {},
      uploaded: () => this.places.reduce((n, p) => n + (p.dest?.uploaded ?? 0), 0),
      images: () => this.pushed().map(format),
      where: (digest) => ({
        image: `${repositoryOf(this.pushed()[0] ?? this.places[0].targets[0])}@${digest}`,
      }),
      complete: () => this.complete(),
    };
  }

  private live(): Place[] {
    return this.places.filter((p) => p.dest && !p.error);
  }

  private pushed(): Target[] {
    return this.places.flatMap((p) => p.dest?.pushed ?? []);
  }

  /**
   * Runs `fn` for each place at once; a place whose `fn` fails is dropped. When none is left, the
   * first place's error is the run's.
   */
  private async settle<T>(
    places: Place[],
    fn: (p: Place) => Promise<T>,
  ): Promise<Array<{ place: Place; value: T }>> {
    const results = await Promise.allSettled(places.map(fn));
    const done: Array<{ place: Place; value: T }> = [];
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') done.push({ place: places[i], value: r.value });
      else this.fail(places[i], r.reason as Error);
    });
    if (!this.live().length) throw this.places.find((p) => p.error)!.error;
    return done;
  }

  private fail(place: Place, error: Error): void {
    if (place.error) return;
    place.error = error;
    if (this.places.length > 1 && this.live().length)
      this.opts.log.warn(`registry ${place.registry} failed, going on with the others: ${error.message}`);
  }

  /** The image every tag of every registry holds, when it is the same one and satisfies `want`. */
  private async upToDate(want: UpToDate): Promise<ExistingImage | null> {
    if (this.live().length < this.places.length) return null;
    // A registry that cannot be read is dropped (reported at the end): the others still get the image.
    const found = await this.settle(this.live(), (p) => p.dest!.upToDate(want));
    if (found.length < this.places.length) return null;
    const digests = new Set(found.map((f) => f.value?.digest));
    return digests.size === 1 ? found[0].value : null;
  }

  /**
   * A layer one registry has (or mounts) by fingerprint: reused when every other registry has its
   * blob too, or gets it copied from that one, streamed.
   */
  private async reuse(fingerprint: string): Promise<{ layer: NewLayer; how: string } | undefined> {
    const found = await this.settle(this.live(), (p) => p.dest!.reuse(fingerprint));
    const from = found.find((f) => f.value);
    if (!from?.value) return undefined;
    const { layer, how } = from.value;
    const others = found.filter((f) => f.value?.layer.descriptor.digest !== layer.descriptor.digest);
    let copied = 0;
    await this.settle(
      others.map((o) => o.place),
      async (p) => {
        if (await p.dest!.exists(layer.descriptor.digest)) return;
        await p.dest!.repo.copyFrom(from.place.dest!.repo, layer.descriptor);
        copied++;
      },
    );
    this.live().forEach((p) => p.dest!.wrote(fingerprint, layer));
    return {
      layer,
      how: copied ? `${how}, copied to ${copied} other registr${copied > 1 ? 'ies' : 'y'}` : how,
    };
  }

  /** Whether every registry holds the blob. */
  private async exists(digest: string): Promise<boolean> {
    const found = await this.settle(this.live(), (p) => p.dest!.exists(digest));
    return found.every((f) => f.value);
  }

  /**
   * One blob to every registry at once (with one registry, its own sink). A registry whose upload
   * fails gets the blob copied from one that has it; one that fails that too is dropped. When every
   * upload fails, the first failure is thrown (a lost session starts the layer over, as for one).
   */
  private sink(label?: string): BlobSink {
    const live = this.live();
    if (live.length === 1) return live[0].dest!.sink(label);
    const sinks = live.map((place) => ({ place, sink: place.dest!.sink(label) }));
    return {
      needsDigestFirst: () => sinks.some((s) => s.sink.needsDigestFirst?.() ?? false),
      create: async (expected) => {
        const created = await this.settle(
          sinks.map((s) => s.place),
          (p) => sinks.find((s) => s.place === p)!.sink.create(expected),
        );
        return this.tee(created.map(({ place, value }) => ({ place, pending: value })));
      },
    };
  }

  private tee(branches: Branch[]): PendingBlob {
    return {
      stream: teeStream(branches),
      commit: async (digest, size) => {
        await Promise.all(
          branches.map(async (b) => {
            if (!b.error) await b.pending.commit(digest, size).catch((err: Error) => (b.error ??= err));
            if (b.error) await b.pending.abort().catch(() => {});
          }),
        );
        const stored = branches.find((b) => !b.error);
        if (!stored) throw branches[0].error!;
        const descriptor = { mediaType: 'application/octet-stream', digest, size };
        await this.settle(
          branches.filter((b) => b.error).map((b) => b.place),
          async (p) => {
            const failure = branches.find((b) => b.place === p)!.error!;
            this.opts.log.info(
              `${p.registry}: the upload failed (${failure.message}); copying ${digest.slice(0, 19)} from ${stored.place.registry}`,
            );
            await p.dest!.repo.copyFrom(stored.place.dest!.repo, descriptor);
          },
        );
      },
      abort: async () => {
        await Promise.all(branches.map((b) => b.pending.abort().catch(() => {})));
      },
    };
  }

  /**
   * Every registry's config and tags; then, once all that could be are written, the artifacts about
   * the image in each. Returns the artifacts attached wherever the image is.
   */
  private async finish(image: BuiltImage, artifacts: Artifact[]): Promise<Artifact[]> {
    const done = await this.settle(this.live(), (p) => p.dest!.finish(image, this.opts.concurrency));
    await done[0].place.dest!.saveCache(); // one cache, shared by every registry
    if (!artifacts.length) return [];
    const subject = image.manifest.descriptor.digest;
    const attached = await Promise.all(
      done.map(({ place }) => place.dest!.attach(subject, artifacts, this.opts.concurrency)),
    );
    return artifacts.filter((a) => attached.every((list) => list.includes(a)));
  }

  /** After the result is published: the run fails when a registry did not get all its tags. */
  private complete(): void {
    const failures: RegistryFailure[] = this.places
      .filter((p) => p.error)
      .map((p) => ({
        registry: p.registry,
        references: p.targets.filter((t) => !p.dest?.pushed.includes(t)).map(format),
        error: p.error!,
      }));
    if (failures.length) throw new NotWrittenError(failures);
  }
}

export interface Branch {
  place: Place;
  pending: PendingBlob;
  error?: Error;
}

/**
 * Writes every chunk to each branch that has not failed, and takes the next once all of them took
 * it (the slowest sets the pace); a branch that fails is left behind. Fails only when all have.
 */
export function teeStream(branches: Branch[]): Writable {
  for (const b of branches) b.pending.stream.on('error', (err) => (b.error ??= err));
  const alive = () => branches.filter((b) => !b.error);
  const settled = (cb: (err?: Error | null) => void) => () =>
    cb(alive().length ? null : (branches[0].error ?? new Error('every upload failed')));
  return new Writable({
    highWaterMark: CHUNK_SIZE,
    write(chunk: Buffer, _enc, cb) {
      void Promise.all(alive().map((b) => whenTaken(b, (s) => s.write(chunk)))).then(settled(cb));
    },
    final(cb) {
      void Promise.all(alive().map((b) => whenTaken(b, (s) => (s.end(), false)))).then(settled(cb));
    },
    destroy(err, cb) {
      for (const b of branches) if (!b.pending.stream.destroyed) b.pending.stream.destroy();
      cb(err);
    },
  });
}

/**
 * Resolves once the branch's stream took what `act` gave it: at once when it wants more, else on
 * `drain` (or `finish` after `end`), or when the stream fails or closes.
 */
function whenTaken(b: Branch, act: (s: Writable) => boolean): Promise<void> {
  const s = b.pending.stream;
  return new Promise((resolve) => {
    if (b.error || s.destroyed) return resolve();
    const done = () => {
      for (const e of ['drain', 'finish', 'error', 'close']) s.off(e, done);
      resolve();
    };
    for (const e of ['drain', 'finish', 'error', 'close']) s.on(e, done);
    if (act(s)) done();
  });
}

function repositoryOf(t: Target): string {
  return `${t.registry}/${t.repository}`;
}
