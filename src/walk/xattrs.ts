import { isUtf8 } from 'node:buffer';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { show, type Logger } from '../log.js';

export type Xattrs = Array<[string, Buffer]>;

/**
 * Labels that belong to the host's security policy, not to the image: a runtime relabels on start.
 */
const SKIPPED = new Set(['security.selinux']);

/** Errors that mean "this filesystem or inode has no xattrs to give": not a reason to fail. */
const TOLERATED_ERRNO = new Set([95 /* EOPNOTSUPP */, 61 /* ENODATA */, 1 /* EPERM */, 13 /* EACCES */]);
/** The path is gone, or a directory on it was replaced by a file since it was listed. */
const VANISHED_ERRNO = new Set([2 /* ENOENT */, 20 /* ENOTDIR */]);

export class VanishedError extends Error {}

interface Binding {
  listAttributesSync(path: string): string[];
  getAttributeSync(path: string, name: string): Buffer | null;
}

/**
 * The native xattr binding (@napi-rs/xattr, Rust's `xattr` crate: llistxattr/lgetxattr, so symlinks
 * are never followed). The bundle carries the glibc builds for x64 and arm64 runners in dist/native/,
 * shared by both entry points: `./native/` from dist/index.js, `../native/` from dist/pre/index.js
 * (resolved against the running file, so it works wherever dist/ is). From source, the npm package
 * resolves its own. Loaded by hand because the package's loader cannot find its `.node` file once
 * bundled. scripts/build.sh runs both entry points from a copy of dist/ to check they find it.
 */
function loadBinding(): { binding: Binding; file: string } | null {
  const require = createRequire(import.meta.url);
  const shipped = `native/xattr.linux-${process.arch}-gnu.node`;
  const candidates = [`./${shipped}`, `../${shipped}`, '@napi-rs/xattr'];
  for (const candidate of candidates) {
    try {
      const file = require.resolve(candidate);
      return { binding: require(file) as Binding, file };
    } catch {
      // try the next one
    }
  }
  return null;
}

let loaded: { binding: Binding; file: string } | null | undefined;

function getBinding(log: Logger): { binding: Binding; file: string } | null {
  if (loaded === undefined) {
    loaded = loadBinding();
    if (!loaded)
      log.warn(
        `no xattr support for ${process.platform}-${process.arch} in this build: extended attributes (file capabilities too) are not captured`,
      );
  }
  return loaded;
}

/**
 * Reads every extended attribute of `path` without following a symlink (the native binding uses
 * llistxattr/lgetxattr). Returns undefined when there are none.
 *
 * Node has no xattr API and the binding takes paths as strings; a path that is not valid UTF-8 cannot
 * be passed through it, so those few are read by `getfattr`, its path fed as raw bytes on stdin.
 */
export function readXattrs(path: Buffer, log: Logger): Xattrs | undefined {
  if (!isUtf8(path)) return readXattrsWithGetfattr(path);
  const text = path.toString('utf8');
  const binding = getBinding(log)?.binding;
  return binding && readUtf8Xattrs(binding, text);
}

/** The xattrs of a path the binding can take (valid UTF-8), tidied; failures as `tolerate` says. */
function readUtf8Xattrs(binding: Binding, path: string): Xattrs | undefined {
  return tidy(listAndGet(binding, path, tolerate));
}

/** Every name and value of `path`'s xattrs; `onError` decides about a failed call (throw, or skip). */
function listAndGet(binding: Binding, path: string, onError: (err: unknown) => void): Xattrs {
  let names: string[];
  try {
    names = binding.listAttributesSync(path);
  } catch (err) {
    onError(err);
    return [];
  }
  const out: Xattrs = [];
  for (const name of names) {
    let value: Buffer | null;
    try {
      value = binding.getAttributeSync(path, name);
    } catch (err) {
      onError(err);
      continue; // removed between list and get
    }
    if (value) out.push([name, Buffer.from(value)]);
  }
  return out;
}

/** Host-only labels dropped, sorted by name (the fingerprint and the tar must not depend on the kernel's order). */
function tidy(xattrs: Xattrs): Xattrs | undefined {
  const out = xattrs.filter(([name]) => !SKIPPED.has(name));
  out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return out.length ? out : undefined;
}

/** Paths per message to the xattr worker; a walk smaller than one batch reads them itself. */
const BATCH = 2048;

/**
 * Reads the xattrs of a walk's entries on a worker thread, in batches, while the walk goes on: on the
 * walk's own thread, two llistxattr calls per entry (the binding asks for the size first) were a
 * quarter of a no-change re-snapshot. Results are keyed by entry index. An entry that vanished before
 * its xattrs were read gets none: the writer notices it is gone when it reads it.
 */
export class XattrReader {
  private paths: string[] = [];
  private indices: number[] = [];
  private worker: Worker | null = null;
  private readonly waiting = new Map<
    number,
    { indices: number[]; resolve: () => void; reject: (e: Error) => void }
  >();
  private readonly sent: Array<Promise<void>> = [];
  private failure: Error | null = null;
  private readonly found = new Map<number, Xattrs>();

  constructor(private readonly log: Logger) {}

  add(index: number, path: Buffer): void {
    if (!isUtf8(path)) {
      const xattrs = ignoreVanished(() => readXattrsWithGetfattr(path));
      if (xattrs) this.found.set(index, xattrs);
      return;
    }
    this.indices.push(index);
    this.paths.push(path.toString('utf8'));
    if (this.paths.length >= BATCH) this.send();
  }

  /** Every entry's xattrs (only those that have any), once all batches are back. */
  async finish(): Promise<Map<number, Xattrs>> {
    try {
      const loadedBinding = getBinding(this.log);
      if (loadedBinding && this.paths.length && !this.worker) {
        // A small walk: not worth a thread.
        this.paths.forEach((p, k) => {
          const xattrs = ignoreVanished(() => readUtf8Xattrs(loadedBinding.binding, p));
          if (xattrs) this.found.set(this.indices[k], xattrs);
        });
      } else if (this.paths.length) this.send();
      await Promise.all(this.sent);
      if (this.failure) throw this.failure;
      return this.found;
    } finally {
      await this.worker?.terminate();
    }
  }

  private send(): void {
    const paths = this.paths;
    const indices = this.indices;
    this.paths = [];
    this.indices = [];
    const worker = this.worker ?? this.start();
    if (!worker) return;
    const id = this.sent.length;
    const reply = new Promise<void>((resolve, reject) => this.waiting.set(id, { indices, resolve, reject }));
    reply.catch(() => {}); // heard in finish(); a walk that failed before it must not crash on it
    this.sent.push(reply);
    worker.postMessage({ id, paths });
  }

  private start(): Worker | null {
    const file = getBinding(this.log)?.file;
    if (!file) return null;
    // The worker runs listAndGet itself (its compiled source): one definition of how xattrs are read.
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const binding = require(workerData.file);
      const listAndGet = ${listAndGet.toString()};
      parentPort.on('message', ({ id, paths }) => {
        const found = [];
        const failures = [];
        paths.forEach((path, k) => {
          const xattrs = listAndGet(binding, path, (err) => {
            const errno = Number(/os error (\\d+)/.exec(String(err && err.message))?.[1]);
            if (!workerData.ignored.includes(errno)) failures.push(path + ': ' + String(err && err.message));
          });
          if (xattrs.length) found.push([k, xattrs]);
        });
        parentPort.postMessage({ id, found, failures });
      });`;
    const worker = new Worker(code, {
      eval: true,
      workerData: { file, ignored: [...TOLERATED_ERRNO, ...VANISHED_ERRNO] },
    });
    // Never what keeps the process alive: a failed walk ends without waiting on it.
    worker.unref();
    worker.on(
      'message',
      (m: { id: number; found: Array<[number, Array<[string, Uint8Array]>]>; failures: string[] }) => {
        const job = this.waiting.get(m.id)!;
        this.waiting.delete(m.id);
        for (const [k, xattrs] of m.found) {
          const tidied = tidy(xattrs.map(([n, v]) => [n, Buffer.from(v.buffer, v.byteOffset, v.byteLength)]));
          if (tidied) this.found.set(job.indices[k], tidied);
        }
        if (m.failures.length)
          this.failure ??= new Error(`cannot read extended attributes: ${m.failures[0]}`);
        job.resolve();
      },
    );
    worker.on('error', (err) => {
      for (const job of this.waiting.values()) job.reject(err);
      this.waiting.clear();
    });
    this.worker = worker;
    return worker;
  }
}

function ignoreVanished(read: () => Xattrs | undefined): Xattrs | undefined {
  try {
    return read();
  } catch (err) {
    if (err instanceof VanishedError) return undefined;
    throw err;
  }
}

function tolerate(err: unknown): undefined {
  const errno = Number(/os error (\d+)/.exec(String((err as Error)?.message))?.[1]);
  if (VANISHED_ERRNO.has(errno)) throw new VanishedError(String(err));
  if (TOLERATED_ERRNO.has(errno)) return undefined;
  throw err;
}

function readXattrsWithGetfattr(path: Buffer): Xattrs | undefined {
  const res = spawnSync(
    'xargs',
    ['-0', 'getfattr', '-h', '-d', '-m', '-', '-e', 'base64', '--absolute-names', '--'],
    {
      input: Buffer.concat([path, Buffer.from([0])]),
      encoding: 'latin1',
    },
  );
  if (res.error || (res.status !== 0 && !res.stdout)) {
    const why = res.stderr ?? '';
    if (/No such file|Not a directory/.test(why)) throw new VanishedError(why);
    if (/Operation not supported/.test(why)) return undefined;
    throw new Error(
      `cannot read the extended attributes of ${show(path)} (a non-UTF-8 path needs getfattr, package "attr"): ${why.trim() || res.error?.message}`,
    );
  }
  const out: Xattrs = [];
  for (const line of res.stdout.split('\n')) {
    const m = /^([^#=][^=]*)=0s(.*)$/.exec(line);
    if (m && !SKIPPED.has(m[1])) out.push([m[1], Buffer.from(m[2], 'base64')]);
    else if (/^[^#=][^=]*=$/.test(line)) out.push([line.slice(0, -1), Buffer.alloc(0)]);
  }
  return out.length ? out : undefined;
}
