import {
  createWriteStream,
  existsSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmdirSync,
  rmSync,
} from 'node:fs';
import { lstat, mkdir, readdir, readFile, rm, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { finished, Writable, type Readable } from 'node:stream';
import { HashTap, type BlobSink, type PendingBlob } from '../content/blob.js';
import { copyBlobs } from '../content/copy.js';
import type { BlobCounts, BlobSource, FetchedManifest, ImageTarget } from '../content/storage.js';
import { jsonBlob, type JsonBlob } from '../image/build.js';
import { Annotation, MediaType, referrerDescriptor, type Descriptor, type Index } from '../content/oci.js';
import { UserError } from '../failure.js';
import { onInterrupt } from '../interrupt.js';

export class LayoutError extends UserError {}

/**
 * This boot and pid namespace, in the names of staging directories next to the pid: a later run may
 * remove a leftover only when its pid, in this same namespace, is no longer running. A pid from
 * another container or machine sharing the directory is never taken for one of ours.
 */
const PID_NAMESPACE = (() => {
  let id = '';
  try {
    id = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() + readlinkSync('/proc/self/ns/pid');
  } catch {
    // no /proc: every run shares the one tag, and a pid that is running still protects its staging
  }
  return createHash('sha256').update(id).digest('hex').slice(0, 8);
})();

/** `.NAME.partial-<pid>-<namespace>-<random>`, and its `.old` (the previous layout being removed). */
const stagingPrefix = (target: string) => `.${path.basename(target)}.partial-`;
const OWNED = /^(\d+)-([0-9a-f]{8})-[0-9a-f]{8}(\.old)?$/;

/**
 * An OCI image layout (image-spec `image-layout.md`) written atomically: everything goes to a sibling
 * staging directory that replaces `output` only once complete, so a failed or interrupted run leaves
 * whatever was at `output` untouched. A new layout holds nothing to skip or mount from: every blob
 * given is written.
 */
export class LayoutWriter implements BlobSink, ImageTarget {
  /** `writing` into staging; `replaced` once the new layout is at `output` (the old one going). */
  private state: 'writing' | 'replaced' | 'aborted' = 'writing';
  private digest = '';
  private readonly written = { sent: 0, bytes: 0 };
  /** Artifacts about the image (putReferrers), listed in `index.json` after its tags. */
  private readonly referrers: Descriptor[] = [];
  private readonly forgetInterrupt: () => void;

  private constructor(
    readonly output: string,
    /** Where the layout is built; the walk must leave it out when `output` lies inside `root`. */
    readonly staging: string,
    /** What was at `output`: what an interrupted run says is still there. */
    private readonly earlier: Earlier,
    /** The first of the directories made above `output`, removed again when nothing comes of it. */
    private readonly madeParent: string | undefined,
    /** Staging directories of runs still going (or of unknown owners), left alone but never captured. */
    private readonly othersStaging: string[],
  ) {
    this.forgetInterrupt = onInterrupt(() => this.interrupted());
  }

  /**
   * Refuses an `output` that is a file or a non-empty directory other than an image layout, and
   * removes what interrupted runs left next to it (their pid no longer running).
   */
  static async create(output: string): Promise<LayoutWriter> {
    const target = path.resolve(output);
    const earlier = await checkReplaceable(target);
    let madeParent: string | undefined;
    const staging = path.join(
      path.dirname(target),
      `${stagingPrefix(target)}${process.pid}-${PID_NAMESPACE}-${randomBytes(4).toString('hex')}`,
    );
    try {
      // Like `skopeo copy … oci:DIR`, the directories above output are made when missing.
      madeParent = await mkdir(path.dirname(target), { recursive: true, mode: 0o755 });
      await mkdir(path.join(staging, 'blobs', 'sha256'), { recursive: true, mode: 0o755 });
    } catch (err) {
      throw new LayoutError(
        `cannot create the output directory next to ${target}: ${(err as Error).message}`,
      );
    }
    const others = await removeLeftovers(target);
    return new LayoutWriter(target, staging, earlier, madeParent, others);
  }

  get name(): string {
    return `oci:${this.output}`;
  }

  /** Blobs written, and their bytes, so far. */
  get counts(): BlobCounts {
    return { present: 0, mounted: 0, ...this.written };
  }

  /** Paths the walk must leave out: `output`, this run's staging directories, and other runs'. */
  get ownPaths(): string[] {
    return [this.output, this.staging, `${this.staging}.old`, ...this.othersStaging];
  }

  async create(): Promise<PendingBlob> {
    const tmp = path.join(this.staging, 'blobs', `.tmp-${randomBytes(6).toString('hex')}`);
    const file = createWriteStream(tmp, { mode: 0o644 });
    // Write errors (a full disk) reach the pipeline as a LayoutError naming the output, not an errno.
    const stream = new Writable({
      highWaterMark: 1024 * 1024,
      write: (chunk: Buffer, _enc, done) => file.write(chunk, (err) => done(err && this.ioError(err))),
      final: (done) => {
        file.end();
        finished(file, (err) => done(err ? this.ioError(err) : null));
      },
      destroy: (err, done) => {
        file.destroy();
        done(err);
      },
    });
    file.on('error', () => {}); // reported through the callbacks above
    return {
      stream,
      commit: async (digest, size) => {
        await rename(tmp, this.blobPath(digest));
        this.written.sent++;
        this.written.bytes += size;
      },
      abort: async () => rm(tmp, { force: true }),
    };
  }

  /**
   * Copies blobs from a registry (a base image's layers), each checked against its digest, so the
   * layout can be unpacked on its own.
   */
  async addBlobs(
    open: (digest: string) => Promise<Readable>,
    blobs: Descriptor[],
    concurrency: number,
  ): Promise<void> {
    await copyBlobs({ name: 'the base image', openBlob: open }, blobs, this, { concurrency });
  }

  /** Writes one blob read from `source`, checked against its digest and size. */
  async copyFrom(source: BlobSource, d: Descriptor): Promise<void> {
    const pending = await this.create();
    const tap = new HashTap();
    try {
      await pipeline(await source.openBlob(d.digest), tap, pending.stream);
      if (tap.digest() !== d.digest || tap.bytes !== d.size) {
        throw new LayoutError(`blob ${d.digest} does not match its digest or size`);
      }
      await pending.commit(d.digest, d.size);
    } catch (err) {
      await pending.abort();
      throw err;
    }
  }

  /** Writes a manifest's bytes as a blob; tags go into `index.json`, written whole by finish. */
  async putManifest(manifest: FetchedManifest): Promise<void> {
    await this.putJson({
      descriptor: { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.bytes.length },
      bytes: manifest.bytes,
    });
  }

  /**
   * Writes artifact manifests about `subject`; finish lists them in `index.json` with their
   * `artifactType` and no `ref.name`, so that they are found as referrers, never taken for tags.
   */
  async putReferrers(_subject: string, referrers: FetchedManifest[]): Promise<string> {
    for (const m of referrers) {
      await this.putManifest(m);
      if (!this.referrers.some((d) => d.digest === m.digest))
        this.referrers.push(referrerDescriptor(m.digest, m.bytes, m.mediaType));
    }
    return `index.json of ${this.output}`;
  }

  async putJson(blob: JsonBlob): Promise<void> {
    await writeFile(this.blobPath(blob.descriptor.digest), blob.bytes, { mode: 0o644 }).catch(
      (err: Error) => {
        throw this.ioError(err);
      },
    );
  }

  /** Writes `oci-layout` and `index.json` (one descriptor per tag) and moves the layout into place. */
  async finish(manifest: Descriptor, tags: string[]): Promise<void> {
    const index: Index = {
      schemaVersion: 2,
      mediaType: MediaType.index,
      manifests: [
        ...tags.map((tag) => ({ ...manifest, annotations: { [Annotation.refName]: tag } })),
        ...this.referrers,
      ],
    };
    try {
      // Explicit modes, like the blobs': under a umask of 0 the defaults would be world-writable.
      await writeFile(
        path.join(this.staging, 'oci-layout'),
        JSON.stringify({ imageLayoutVersion: '1.0.0' }),
        {
          mode: 0o644,
        },
      );
      await writeFile(path.join(this.staging, 'index.json'), jsonBlob(index, MediaType.index).bytes, {
        mode: 0o644,
      });
    } catch (err) {
      throw this.ioError(err as Error);
    }
    this.digest = manifest.digest;
    this.swapIntoPlace();
    // An interrupt from here on finishes this removal and says the new layout is in place.
    await rm(`${this.staging}.old`, { recursive: true, force: true });
  }

  /**
   * Moves the new layout to `output`, an earlier one aside to `<staging>.old`: synchronous, so no
   * signal handler runs between the two renames and `output` always holds one whole layout.
   */
  private swapIntoPlace(): void {
    const old = `${this.staging}.old`;
    let hadOld = false;
    try {
      renameSync(this.output, old);
      hadOld = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw this.ioError(err as Error);
    }
    try {
      renameSync(this.staging, this.output);
    } catch (err) {
      if (hadOld) renameSync(old, this.output); // put the previous layout back
      throw this.ioError(err as Error);
    }
    this.state = 'replaced';
  }

  /** A write that failed for want of room or rights: one line that says where and what to do. */
  private ioError(err: Error): Error {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT')
      return new LayoutError(
        `no space left on device while writing the layout next to ${this.output}; free some space or choose another output`,
      );
    if (code === 'EROFS' || code === 'EACCES' || code === 'EPERM')
      return new LayoutError(
        `cannot write the layout next to ${this.output} (${code}); choose another output`,
      );
    return err;
  }

  async abort(): Promise<void> {
    if (this.state !== 'writing') return;
    this.state = 'aborted';
    this.forgetInterrupt();
    // Retried: a write still under way (an interrupt) may add a file while the directory is removed.
    await rm(this.staging, { recursive: true, force: true, maxRetries: 5 });
    this.removeMadeParents();
  }

  /** On SIGTERM/SIGINT: undoes the layout, or finishes putting it in place; says what is at output. */
  private interrupted(): string {
    if (this.state === 'replaced') {
      removeWhileRemoved(`${this.staging}.old`);
      return `${this.output} holds the new layout (${this.digest}), but the run did not finish`;
    }
    removeWhileRemoved(this.staging);
    this.removeMadeParents();
    return {
      layout: `${this.output} still holds the earlier layout`,
      empty: `${this.output} is still the empty directory it was`,
      nothing: `nothing was written at ${this.output}`,
    }[this.earlier];
  }

  /** The directories made above `output` for a layout that did not come to be, as far as empty. */
  private removeMadeParents(): void {
    if (!this.madeParent) return;
    for (let dir = path.dirname(this.output); ; dir = path.dirname(dir)) {
      try {
        rmdirSync(dir);
      } catch {
        return; // not empty (someone else's now), or gone
      }
      if (dir === this.madeParent) return;
    }
  }

  private blobPath(digest: string): string {
    return path.join(this.staging, 'blobs', 'sha256', digest.slice('sha256:'.length));
  }
}

type Earlier = 'layout' | 'empty' | 'nothing';

/** What replaceable is at `target` (a layout, an empty directory, nothing); refuses anything else. */
async function checkReplaceable(target: string): Promise<Earlier> {
  let st;
  try {
    st = await lstat(target);
  } catch {
    return 'nothing';
  }
  if (!st.isDirectory())
    throw new LayoutError(`output ${target} exists and is not a directory; choose another path`);
  const names = await readdir(target);
  if (names.length === 0) return 'empty';
  const isLayout = await readFile(path.join(target, 'oci-layout'), 'utf8')
    .then((s) => typeof JSON.parse(s)?.imageLayoutVersion === 'string')
    .catch(() => false);
  if (!isLayout) {
    throw new LayoutError(
      `output ${target} is a non-empty directory that is not an OCI image layout; refusing to overwrite it`,
    );
  }
  return 'layout';
}

/**
 * Removes staging directories (and `.old` layouts) that interrupted runs left next to `target`:
 * only those named with this pid namespace whose pid is no longer running. Returns the ones left in
 * place (a live run's, or named by another namespace or an older version), for the walk to skip.
 */
async function removeLeftovers(target: string): Promise<string[]> {
  const parent = path.dirname(target);
  const prefix = stagingPrefix(target);
  const others: string[] = [];
  for (const name of await readdir(parent).catch(() => [])) {
    if (!name.startsWith(prefix)) continue;
    const owner = OWNED.exec(name.slice(prefix.length));
    const pid = owner ? Number(owner[1]) : 0;
    const dead = owner?.[2] === PID_NAMESPACE && pid !== process.pid && !running(pid);
    if (dead) await rm(path.join(parent, name), { recursive: true, force: true, maxRetries: 5 });
    else if (pid !== process.pid) others.push(path.join(parent, name));
  }
  return others;
}

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // alive, someone else's
  }
}

/**
 * Removes a directory that an unfinished asynchronous `rm` may still be removing (an interrupt in the
 * middle of it): rmSync stops at the first entry that vanished under it and, with `force`, says
 * nothing, so it is run again until the directory is gone.
 */
function removeWhileRemoved(dir: string): void {
  for (let i = 0; i < 20 && existsSync(dir); i++)
    rmSync(dir, { recursive: true, force: true, maxRetries: 5 });
}
