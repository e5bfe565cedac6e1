import { PassThrough, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { BlobSink, PendingBlob } from '../content/blob.js';
import type {
  BlobCounts,
  BlobSource,
  FetchedManifest,
  ImageSource,
  ImageTarget,
} from '../content/storage.js';
import type { Descriptor } from '../content/oci.js';
import type { RegistryClient } from './client.js';
import { getManifest, putManifest } from './manifests.js';
import { listReferrers, putReferrers } from './referrers.js';
import { RegistryError, RestartBlobError } from './errors.js';
import { backoff, DeadlineError, DEFAULT_RETRY, RETRY_STATUS } from './retry.js';

/** Chunks of a streamed upload. ≥ 5 MiB, which ECR requires; small enough to hold one per upload. */
export const CHUNK_SIZE = 8 * 1024 * 1024;

/** What this repository did with blobs; changed only here (and by its uploads below). */
type Tally = { -readonly [K in keyof BlobCounts]: BlobCounts[K] };

/**
 * One repository of a registry (distribution-spec v1.1): blobs pulled and pushed, manifests read and
 * stored. An image source and an image target for content/copy.ts.
 */
export class Repository implements ImageSource, ImageTarget {
  private readonly tally: Tally = { present: 0, mounted: 0, sent: 0, bytes: 0 };
  /** Set once the registry refused a chunked upload: from then on, digest first, then one PUT. */
  private monolithic = false;

  constructor(
    readonly client: RegistryClient,
    readonly name: string,
    /** What this run does there: push to the target, only pull from a base image's repository. */
    readonly access: 'push' | 'pull' = 'push',
  ) {}

  /** The registry's host, as its API is reached. */
  get registry(): string {
    return this.client.host;
  }

  /** Blobs found present, mounted, sent, and the bytes sent, so far. */
  get counts(): BlobCounts {
    return { ...this.tally };
  }

  /** Bytes actually sent in blob bodies. */
  get uploaded(): number {
    return this.tally.bytes;
  }

  /** The token scope for this repository, push first (some registries read only the first scope). */
  get scope(): string {
    return `repository:${this.name}:${this.access === 'push' ? 'pull,push' : 'pull'}`;
  }

  /**
   * Whether the repository holds the blob already, so it need not be sent: one `HEAD`, and the blob
   * counted as present when it is there.
   */
  async exists(digest: string): Promise<boolean> {
    const found = await this.holds(digest);
    if (found) this.tally.present++;
    return found;
  }

  /** After an upload failed or answered oddly: whether the blob is there all the same (it was sent). */
  landed(digest: string): Promise<boolean> {
    return this.holds(digest);
  }

  /** One `HEAD`: whether the repository holds the blob now (a digest it names must be this one). */
  private async holds(digest: string): Promise<boolean> {
    const res = await this.client.request({
      method: 'HEAD',
      url: `/v2/${this.name}/blobs/${digest}`,
      what: `checking blob ${short(digest)}`,
      scopes: [this.scope],
      ok: [200, 404],
    });
    await res.body?.cancel();
    const named = res.headers.get('docker-content-digest');
    return res.status === 200 && (!named || named === digest);
  }

  /**
   * Whether a blob upload's answer means the blob is stored: 201 with our digest does; any other
   * success (a proxy or login page answers 200 for a registry it never reached) is checked with a HEAD.
   */
  async confirmStored(res: Response, digest: string, what: string): Promise<void> {
    const named = res.headers.get('docker-content-digest');
    await res.body?.cancel();
    if (res.status === 201 && named === digest) return;
    if (await this.landed(digest)) return;
    throw new RegistryError(
      `${what} failed: the registry answered ${res.status}${named && named !== digest ? ` naming ${named}` : ''} but does not have the blob (is a proxy or login page in the way? check the host name and port)`,
    );
  }

  /** Cross-repository mount; false when the registry opened an upload instead (cancelled here). */
  async mount(digest: string, from: string): Promise<boolean> {
    const res = await this.client.request({
      method: 'POST',
      url: `/v2/${this.name}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`,
      what: `mounting ${short(digest)} from ${from}`,
      scopes: [this.scope, `repository:${from}:pull`],
      ok: [201, 202],
      headers: { 'Content-Length': '0' },
    });
    await res.body?.cancel();
    if (res.status === 201) {
      this.tally.mounted++;
      return true;
    }
    await this.cancel(res);
    return false;
  }

  /** A small blob (config, manifest-sized) in one monolithic POST+PUT, skipped when present. */
  async putBuffer(descriptor: Descriptor, bytes: Buffer): Promise<void> {
    if (await this.exists(descriptor.digest)) return;
    for (let attempt = 1; ; attempt++) {
      let location: URL | undefined;
      try {
        location = await this.startUpload();
        await this.finishUpload(location, descriptor.digest, bytes, false);
        break;
      } catch (err) {
        // The answer may be what was lost: a blob that landed is done; else a fresh upload, the
        // abandoned session cancelled (best effort) rather than left open until the registry purges it.
        if (err instanceof DeadlineError) throw err;
        if (await this.landed(descriptor.digest).catch(unlessDeadline(false))) break;
        if (location) await this.cancel(location);
        if (attempt >= BLOB_ATTEMPTS) throw err;
        await this.client.pause(backoff(attempt), `uploading ${short(descriptor.digest)}`);
      }
    }
    this.tally.bytes += bytes.length;
    this.tally.sent++;
  }

  /** A manifest by tag or digest, checked against its digest; null when there is none. */
  manifest(reference: string): Promise<FetchedManifest | null> {
    return getManifest(this, reference);
  }

  /** Tags a manifest (or stores it by digest), confirmed as putManifest says. */
  async putManifest(manifest: FetchedManifest, tag?: string): Promise<void> {
    await putManifest(this, tag ?? manifest.digest, manifest.bytes, manifest.mediaType);
  }

  /** The referrers of a manifest: the referrers API, else the tag schema. */
  referrers(digest: string): Promise<Descriptor[]> {
    return listReferrers(this, digest);
  }

  /** Stores artifact manifests about `subject` where the referrers API or the tag schema finds them. */
  putReferrers(subject: string, referrers: FetchedManifest[]): Promise<string> {
    return putReferrers(this, subject, referrers);
  }

  /** GET a blob as a stream (a base layer to copy or to write into a layout). */
  async openBlob(digest: string): Promise<Readable> {
    const res = await this.client.request({
      method: 'GET',
      url: `/v2/${this.name}/blobs/${digest}`,
      what: `reading blob ${short(digest)} from ${this.name}`,
      scopes: [this.scope],
      ok: [200],
      timeoutMs: 30 * 60_000,
    });
    if (!res.body) throw new RegistryError(`blob ${digest} of ${this.name} came without a body`);
    return Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
  }

  /**
   * Copies a blob from another registry, streamed from GET to PUT (never through a temp file); the
   * target checks the digest. Retried from the start when either side fails.
   */
  async copyFrom(source: BlobSource, descriptor: Descriptor): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      // The digest and size are known: one streamed PUT, a round trip per blob rather than per chunk.
      const pending = this.monolithicUpload(await this.startUpload(), descriptor);
      try {
        await pipeline(await source.openBlob(descriptor.digest), pending.stream);
        await pending.commit(descriptor.digest, descriptor.size);
        return;
      } catch (err) {
        await pending.abort();
        if (err instanceof DeadlineError || this.client.deadline.passed)
          throw this.client.deadline.error(`copying ${short(descriptor.digest)}`);
        if (attempt >= BLOB_ATTEMPTS) throw err;
        await this.client.pause(backoff(attempt), `copying ${short(descriptor.digest)}`);
      }
    }
  }

  /**
   * A sink for a blob whose digest is known only at its end: chunked PATCHes, then PUT ?digest. For a
   * registry that refuses chunks, the caller computes the digest in a first pass and the blob is
   * streamed in a single PUT.
   */
  sink(label = 'a blob'): BlobSink {
    return {
      needsDigestFirst: () => this.monolithic,
      create: async (expected) => {
        const location = await this.startUpload();
        return expected
          ? this.monolithicUpload(location, expected, label)
          : new ChunkedUpload(this, location, label, this.tally, () => (this.monolithic = true)).pending();
      },
    };
  }

  /** `PUT <location>?digest=…` with the whole blob streamed as its body (Content-Length known). */
  monolithicUpload(location: URL, expected: { digest: string; size: number }, label?: string): PendingBlob {
    const body = new PassThrough({ highWaterMark: CHUNK_SIZE });
    const url = new URL(location);
    url.searchParams.set('digest', expected.digest);
    const what = `uploading ${label ? `${label} (${short(expected.digest)})` : short(expected.digest)}`;
    const done = this.client
      .request({
        method: 'PUT',
        url,
        what,
        scopes: [this.scope],
        ok: SUCCESS,
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(expected.size) },
        stream: body,
        // The whole blob rides in this one request: a slow link may need long for gigabytes.
        timeoutMs: 6 * 60 * 60_000,
      })
      .then((res) => this.confirmStored(res, expected.digest, what))
      .catch((err: Error) => {
        body.destroy(
          err instanceof RegistryError && !(err instanceof DeadlineError)
            ? new RestartBlobError(err.message, err.status, err.code)
            : err,
        );
        throw err;
      });
    done.catch(() => {}); // observed in commit(); a failure also breaks the stream being written
    return {
      stream: body,
      commit: async () => {
        await done.catch((err: Error) => {
          throw err instanceof RestartBlobError || err instanceof DeadlineError
            ? err
            : new RestartBlobError(`the upload did not complete (${err.message})`);
        });
        this.tally.bytes += expected.size;
        this.tally.sent++;
      },
      abort: async () => {
        body.destroy();
        await this.cancel(location);
      },
    };
  }

  async startUpload(): Promise<URL> {
    const res = await this.client.request({
      method: 'POST',
      url: `/v2/${this.name}/blobs/uploads/`,
      what: `starting an upload to ${this.name}`,
      scopes: [this.scope],
      ok: [202],
      headers: { 'Content-Length': '0' },
    });
    await res.body?.cancel();
    return locationOf(res, this.client.base);
  }

  /**
   * `PUT <location>&digest=…` with the last bytes (or none): the registry checks the digest, and the
   * answer is believed only as confirmStored says.
   */
  async finishUpload(location: URL, digest: string, last: Buffer, retry = true): Promise<void> {
    const url = new URL(location);
    url.searchParams.set('digest', digest);
    const what = `completing the upload of ${short(digest)}`;
    const res = await this.client.request({
      method: 'PUT',
      url,
      what,
      scopes: [this.scope],
      ok: SUCCESS,
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(last.length) },
      body: last,
      retry,
    });
    await this.confirmStored(res, digest, what);
  }

  /** Abandons an upload session; failures are ignored, the registry expires it anyway. */
  async cancel(resOrLocation: Response | URL): Promise<void> {
    try {
      const location =
        resOrLocation instanceof URL ? resOrLocation : locationOf(resOrLocation, this.client.base);
      const res = await this.client.request({
        method: 'DELETE',
        url: location,
        what: 'cancelling an upload',
        scopes: [this.scope],
        ok: [200, 202, 204, 404],
      });
      await res.body?.cancel();
    } catch {
      // nothing to do
    }
  }
}

/**
 * One blob streamed in chunks while it is being compressed. Each full chunk is PATCHed with its
 * Content-Range once the next byte arrives; the last one rides in the closing PUT (ECR fails an empty
 * PUT after chunks). A PATCH that fails is resumed from the offset the registry reports (GET on the
 * upload URL); when the session is gone, RestartBlobError asks the caller to start over from source.
 */
class ChunkedUpload {
  private location: URL;
  private offset = 0;
  private parts: Buffer[] = [];
  private buffered = 0;
  private full: Buffer | null = null;
  private chunkSize = CHUNK_SIZE;

  constructor(
    private readonly repo: Repository,
    start: URL,
    /** What is uploaded, for messages: "layer 2/5 /usr". */
    private readonly label: string,
    private readonly tally: Tally,
    /** The registry refuses chunks: later blobs go up whole. */
    private readonly chunksRefused: () => void,
  ) {
    this.location = start;
  }

  pending(): PendingBlob {
    const stream = new Writable({
      highWaterMark: CHUNK_SIZE,
      write: (chunk: Buffer, _enc, done) => this.take(chunk).then(() => done(), done),
    });
    return {
      stream,
      commit: (digest) => this.commit(digest),
      abort: () => this.repo.cancel(this.location),
    };
  }

  private async take(chunk: Buffer): Promise<void> {
    if (this.full) {
      await this.patch(this.full);
      this.full = null;
    }
    this.parts.push(chunk);
    this.buffered += chunk.length;
    if (this.buffered >= this.chunkSize) {
      this.full = Buffer.concat(this.parts, this.buffered);
      this.parts = [];
      this.buffered = 0;
    }
  }

  private async commit(digest: string): Promise<void> {
    const rest = Buffer.concat(this.parts, this.buffered);
    let last: Buffer = rest;
    if (this.full) {
      if (rest.length) await this.patch(this.full);
      else last = this.full;
    }
    // The closing PUT appends its body before checking the digest, so it is never resent blindly:
    // after a failure, wait, see whether the blob landed, else where the upload stands, and go on
    // from there. A registry that keeps failing while the session stands fails the push: starting
    // the layer over from the tree is for a session that is gone.
    for (let round = 1; ; round++) {
      try {
        await this.repo.finishUpload(this.location, digest, last, false);
        this.tally.bytes += last.length;
        break;
      } catch (err) {
        if (!(err instanceof RegistryError) || err instanceof DeadlineError) throw err;
        if (err.status !== undefined && !RETRY_STATUS.has(err.status)) {
          throw new RestartBlobError(`the upload did not complete (${err.message})`, err.status, err.code);
        }
        if (round >= DEFAULT_RETRY.attempts) throw err;
        await this.repo.client.pause(err.retryAfterMs ?? backoff(round), `uploading ${this.label}`);
        if (await this.repo.landed(digest).catch(unlessDeadline(false))) break;
        const have = await this.status();
        if (have === null || have < this.offset || have > this.offset + last.length) {
          throw new RestartBlobError(`the upload did not complete (${err.message})`);
        }
        this.tally.bytes += have - this.offset;
        last = last.subarray(have - this.offset);
        this.offset = have;
      }
    }
    this.tally.sent++;
  }

  /**
   * One chunk, never resent blindly either (a PATCH cut midway may have appended part of it): after a
   * failure, wait, ask where the upload stands, and send the rest from there; 5 tries in all.
   */
  private async patch(data: Buffer): Promise<void> {
    let sent = 0;
    for (let tries = 1; sent < data.length; tries++) {
      const start = this.offset + sent;
      const body = data.subarray(sent);
      const what = `uploading ${this.label} (bytes ${start}-${start + body.length - 1})`;
      try {
        const res = await this.repo.client.request({
          method: 'PATCH',
          url: this.location,
          what,
          scopes: [this.repo.scope],
          ok: [202, 201, 204],
          headers: {
            'Content-Type': 'application/octet-stream',
            'Content-Range': `${start}-${start + body.length - 1}`,
            'Content-Length': String(body.length),
          },
          body,
          retry: false,
        });
        await res.body?.cancel();
        this.location = locationOf(res, this.location);
        this.tally.bytes += body.length;
        sent = data.length;
      } catch (err) {
        if (err instanceof DeadlineError) throw err;
        if (err instanceof RegistryError && isChunkingRefused(err)) {
          this.chunksRefused();
          throw new RestartBlobError(
            `the registry refuses chunked uploads (${err.message}); uploading whole blobs instead`,
          );
        }
        if (tries >= DEFAULT_RETRY.attempts)
          throw new RestartBlobError(`a chunk at ${start} kept failing (${(err as Error).message})`);
        await this.repo.client.pause((err as RegistryError).retryAfterMs ?? backoff(tries), what);
        // Ask where the registry stands, then send from there.
        const have = await this.status();
        if (have === null || have < this.offset || have > this.offset + data.length) {
          throw new RestartBlobError(`upload session lost after ${start} bytes (${(err as Error).message})`);
        }
        sent = have - this.offset;
      }
    }
    this.offset += data.length;
  }

  /** Bytes the registry holds for this upload (`GET <location>` → `Range: 0-<last>`), null if gone. */
  private async status(): Promise<number | null> {
    try {
      const res = await this.repo.client.request({
        method: 'GET',
        url: this.location,
        what: 'checking an upload',
        scopes: [this.repo.scope],
        ok: [204, 200],
      });
      await res.body?.cancel();
      this.location = locationOf(res, this.location);
      const range = /^(?:bytes=)?0-(\d+)$/.exec(res.headers.get('range') ?? '');
      // distribution answers "0-0" for an empty session as for a 1-byte one: read it as empty (a
      // session holding exactly one byte is all but impossible with MiB chunks, and resending that
      // byte only costs a 416 or a digest mismatch, which start the blob over; skipping a byte
      // that is not there would corrupt it the same way, every time a first PATCH fails).
      return range && range[1] !== '0' ? Number(range[1]) + 1 : 0;
    } catch (err) {
      if (err instanceof DeadlineError) throw err;
      return null;
    }
  }
}

/** Answers a blob upload may end with; what they mean is for confirmStored to say. */
const SUCCESS = [200, 201, 202, 204];

/** Attempts at a small blob or a copied blob, each from a fresh upload session. */
const BLOB_ATTEMPTS = 3;

/** For a check whose failure means "no": the run's deadline still ends everything. */
function unlessDeadline<T>(value: T): (err: unknown) => T {
  return (err) => {
    if (err instanceof DeadlineError) throw err;
    return value;
  };
}

/** What registries answer to a PATCH they do not support (GAR and other monolithic-only ones). */
function isChunkingRefused(err: RegistryError): boolean {
  return err.status === 405 || err.status === 501 || err.code === 'UNSUPPORTED';
}

/** The newest upload `Location`, resolved against the request URL, its query kept. */
function locationOf(res: Response, base: URL): URL {
  const loc = res.headers.get('location');
  if (!loc) {
    if (res.status === 204 || res.status === 200) return base;
    throw new RegistryError(`the registry answered ${res.status} without an upload Location`);
  }
  return new URL(loc, base);
}

export function short(digest: string): string {
  return digest.slice(0, 19);
}

/** A repository read as an image source (promote, pull): it is one. */
export function registrySource(repo: Repository): ImageSource {
  return repo;
}
