import { createHash, type Hash } from 'node:crypto';
import { Transform, Writable } from 'node:stream';

/** Where the bytes of a blob go; the digest is known only once they have all passed. */
export interface BlobSink {
  /** `expected` is given when the sink asked for the digest first (see below). */
  create(expected?: { digest: string; size: number }): Promise<PendingBlob>;
  /** True when this sink must know the digest before the first byte (monolithic uploads). */
  needsDigestFirst?(): boolean;
}

export interface PendingBlob {
  stream: Writable;
  /** Called once the stream has finished, with the digest and size computed on the way. */
  commit(digest: string, size: number): Promise<void>;
  abort(): Promise<void>;
}

/** A sink that keeps nothing: a pass that only computes a blob's digests. */
export const DISCARD: BlobSink = {
  create: async () => ({
    stream: new Writable({ write: (_c, _e, done) => done() }),
    commit: async () => {},
    abort: async () => {},
  }),
};

/** Passes bytes through unchanged while hashing and counting them. */
export class HashTap extends Transform {
  bytes = 0;
  private readonly hash: Hash = createHash('sha256');
  private hex?: string;

  constructor(private readonly onBytes?: (n: number) => void) {
    super();
  }

  override _transform(
    chunk: Buffer,
    _enc: BufferEncoding,
    done: (err?: Error | null, data?: Buffer) => void,
  ) {
    this.update(chunk);
    done(null, chunk);
  }

  /** Hashes and counts bytes that do not pass through the stream. */
  update(chunk: Buffer): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.onBytes?.(chunk.length);
  }

  digest(): string {
    this.hex ??= this.hash.digest('hex');
    return `sha256:${this.hex}`;
  }
}
