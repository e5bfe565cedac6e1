import { createWriteStream, existsSync, renameSync, rmSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { HashTap, type BlobSink, type PendingBlob } from '../layer/write.js';
import { finished, Writable, type Readable } from 'node:stream';
import { limiter } from '../util/limit.js';
import { jsonBlob, type JsonBlob } from '../image/build.js';
import { Annotation, MediaType, type Descriptor, type Index } from '../image/oci.js';

export class LayoutError extends Error {}

/** Layouts being written, for abortLayoutsSync(). */
const live = new Set<LayoutWriter>();

/**
 * Removes every layout still being written (on SIGTERM/SIGINT), synchronously: no other code runs
 * before the process exits, so nothing writes after it or reports the files it removed as errors.
 * What was at `output` stays.
 */
export function abortLayoutsSync(): void {
  for (const l of live) {
    try {
      rmSync(l.staging, { recursive: true, force: true, maxRetries: 5 });
      l.restorePrevious();
    } catch {
      // best effort: the process is going away
    }
  }
  live.clear();
}

/**
 * An OCI image layout (image-spec `image-layout.md`) written atomically: everything goes to a sibling
 * staging directory that replaces `output` only once complete, so a failed or interrupted run leaves
 * whatever was at `output` untouched.
 */
export class LayoutWriter implements BlobSink {
  private constructor(
    readonly output: string,
    /** Where the layout is built; the walk must leave it out when `output` lies inside `root`. */
    readonly staging: string,
  ) {}

  /** Refuses an `output` that is a file or a non-empty directory other than an image layout. */
  static async create(output: string): Promise<LayoutWriter> {
    const target = path.resolve(output);
    await checkReplaceable(target);
    const staging = path.join(
      path.dirname(target),
      `.${path.basename(target)}.partial-${randomBytes(4).toString('hex')}`,
    );
    try {
      await mkdir(path.join(staging, 'blobs', 'sha256'), { recursive: true, mode: 0o755 });
    } catch (err) {
      throw new LayoutError(
        `cannot create the output directory next to ${target}: ${(err as Error).message}`,
      );
    }
    const writer = new LayoutWriter(target, staging);
    live.add(writer);
    return writer;
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
      commit: async (digest) => rename(tmp, this.blobPath(digest)),
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
    const parallel = limiter(concurrency);
    await Promise.all(
      blobs.map((d) =>
        parallel(async () => {
          const pending = await this.create();
          const tap = new HashTap();
          try {
            await pipeline(await open(d.digest), tap, pending.stream);
            if (tap.digest() !== d.digest || tap.bytes !== d.size) {
              throw new LayoutError(`blob ${d.digest} does not match its digest or size`);
            }
            await pending.commit(d.digest, d.size);
          } catch (err) {
            await pending.abort();
            throw err;
          }
        }),
      ),
    );
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
      manifests: tags.map((tag) => ({ ...manifest, annotations: { [Annotation.refName]: tag } })),
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
    await replaceDirectory(this.staging, this.output);
    live.delete(this);
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
    live.delete(this);
    // Retried: a write still under way (an interrupt) may add a file while the directory is removed.
    await rm(this.staging, { recursive: true, force: true, maxRetries: 5 });
    this.restorePrevious();
  }

  /** Stopped between the two renames of finish(): the previous layout goes back where it was. */
  restorePrevious(): void {
    const old = `${this.staging}.old`;
    if (existsSync(old) && !existsSync(this.output)) renameSync(old, this.output);
  }

  private blobPath(digest: string): string {
    return path.join(this.staging, 'blobs', 'sha256', digest.slice('sha256:'.length));
  }
}

async function checkReplaceable(target: string): Promise<void> {
  let st;
  try {
    st = await lstat(target);
  } catch {
    return; // nothing there yet
  }
  if (!st.isDirectory())
    throw new LayoutError(`output ${target} exists and is not a directory; choose another path`);
  const names = await readdir(target);
  if (names.length === 0) return;
  const isLayout = await readFile(path.join(target, 'oci-layout'), 'utf8')
    .then((s) => typeof JSON.parse(s)?.imageLayoutVersion === 'string')
    .catch(() => false);
  if (!isLayout) {
    throw new LayoutError(
      `output ${target} is a non-empty directory that is not an OCI image layout; refusing to overwrite it`,
    );
  }
}

/** Moves `staging` to `target`, swapping out an old layout only after the new one is in place. */
async function replaceDirectory(staging: string, target: string): Promise<void> {
  const old = `${staging}.old`;
  let hadOld = false;
  try {
    await rename(target, old);
    hadOld = true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') throw err;
  }
  try {
    await rename(staging, target);
  } catch (err) {
    if (hadOld) await rename(old, target); // put the previous layout back
    throw err;
  }
  if (hadOld) await rm(old, { recursive: true, force: true });
}
