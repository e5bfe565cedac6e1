import { isUtf8 } from 'node:buffer';
import { spawnSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { show, type Logger } from '../log.js';
import { loadNative } from '../util/native.js';

/**
 * Extended attributes by name. A name is a latin1 string of its raw bytes (one char per byte), like the
 * walk's path keys: a name that is not UTF-8 survives, and names sort by their bytes.
 */
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

/**
 * The binding returns names as JS strings and refuses a name that is not UTF-8 ("Invalid attribute"):
 * such a path is read again with getfattr, which gives the raw bytes.
 */
const NOT_UTF8_NAME = /Invalid attribute/;
class NotUtf8NameError extends Error {}

interface Binding {
  listAttributesSync(path: string): string[];
  getAttributeSync(path: string, name: string): Buffer | null;
}

/**
 * The native xattr binding (@napi-rs/xattr, Rust's `xattr` crate: llistxattr/lgetxattr, so symlinks
 * are never followed). The bundle carries the glibc builds for x64 and arm64 runners in dist/native/,
 * shared by both entry points; from source, the npm package resolves its own. Loaded by hand because
 * the package's loader cannot find its `.node` file once bundled. scripts/build.sh runs both entry
 * points from a copy of dist/ to check they find it.
 */
function loadBinding(): { binding: Binding; file: string } | null {
  return loadNative<Binding>(`xattr.linux-${process.arch}-gnu.node`, '@napi-rs/xattr');
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
  if (!isUtf8(path)) return tidy(readXattrsWithGetfattr(path), path, log);
  const binding = getBinding(log)?.binding;
  return binding && readUtf8Xattrs(binding, path, log);
}

/**
 * The xattrs of a path the binding can take (valid UTF-8), tidied; failures as `tolerate` says. A
 * name the binding cannot return (not UTF-8) sends the whole path to getfattr.
 */
function readUtf8Xattrs(binding: Binding, path: Buffer, log: Logger): Xattrs | undefined {
  let found: Xattrs;
  try {
    found = listAndGet(binding, path.toString('utf8'), tolerate);
  } catch (err) {
    if (!(err instanceof NotUtf8NameError)) throw err;
    found = readXattrsWithGetfattr(path) ?? [];
  }
  return tidy(found, path, log);
}

/**
 * Every name (as a latin1 string of its bytes) and value of `path`'s xattrs; `onError` decides about a
 * failed call (throw, or skip). Runs on the worker too, from its source text: self-contained.
 */
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
    if (value) out.push([Buffer.from(name, 'utf8').toString('latin1'), Buffer.from(value)]);
  }
  return out;
}

/**
 * What an image can carry, sorted by name (the fingerprint and the tar must not depend on the kernel's
 * order). Host-only labels are dropped. So is a name holding `=`, with a warning: a PAX record is
 * `key=value` and every reader (Go's archive/tar: umoci, containerd, docker) splits at the first `=`,
 * so `user.a=b` = `v` would come back as `user.a` = `b=v`. Names that are not UTF-8 are carried: Go
 * reads and sets their bytes verbatim. Every mode reads xattrs through here, so the tar, the layer
 * fingerprint and the baseline's xattr digest all see the same list.
 */
function tidy(xattrs: Xattrs | undefined, path: Buffer, log: Logger): Xattrs | undefined {
  const out = (xattrs ?? []).filter(([name]) => {
    if (SKIPPED.has(name)) return false;
    if (!name.includes('=')) return true;
    log.warn(
      `${show(path)}: extended attribute ${showName(name)} left out: its name holds "=", which a tar (PAX) record cannot carry`,
    );
    return false;
  });
  out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return out.length ? out : undefined;
}

/** An xattr name (latin1 string of its bytes) fit for a log line. */
export function showName(name: string): string {
  return `"${show(Buffer.from(name, 'latin1'))}"`;
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
  private paths: Buffer[] = [];
  private indices: number[] = [];
  private worker: Worker | null = null;
  private readonly waiting = new Map<
    number,
    { indices: number[]; paths: Buffer[]; resolve: () => void; reject: (e: Error) => void }
  >();
  private readonly sent: Array<Promise<void>> = [];
  private failure: Error | null = null;
  private readonly found = new Map<number, Xattrs>();

  constructor(private readonly log: Logger) {}

  add(index: number, path: Buffer): void {
    if (!isUtf8(path)) {
      this.keep(index, path, () => readXattrsWithGetfattr(path));
      return;
    }
    this.indices.push(index);
    this.paths.push(path);
    if (this.paths.length >= BATCH) this.send();
  }

  /** Every entry's xattrs (only those that have any), once all batches are back. */
  async finish(): Promise<Map<number, Xattrs>> {
    try {
      const loadedBinding = getBinding(this.log);
      if (loadedBinding && this.paths.length && !this.worker) {
        // A small walk: not worth a thread.
        this.paths.forEach((p, k) => {
          const xattrs = ignoreVanished(() => readUtf8Xattrs(loadedBinding.binding, p, this.log));
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

  /** Keeps what `read` finds for entry `index`, as an image can carry it. */
  private keep(index: number, path: Buffer, read: () => Xattrs | undefined): void {
    const xattrs = tidy(
      ignoreVanished(() => read()),
      path,
      this.log,
    );
    if (xattrs) this.found.set(index, xattrs);
  }

  private send(): void {
    const paths = this.paths;
    const indices = this.indices;
    this.paths = [];
    this.indices = [];
    const worker = this.worker ?? this.start();
    if (!worker) return;
    const id = this.sent.length;
    const reply = new Promise<void>((resolve, reject) =>
      this.waiting.set(id, { indices, paths, resolve, reject }),
    );
    reply.catch(() => {}); // heard in finish(); a walk that failed before it must not crash on it
    this.sent.push(reply);
    worker.postMessage({ id, paths: paths.map((p) => p.toString('utf8')) });
  }

  private start(): Worker | null {
    const file = getBinding(this.log)?.file;
    if (!file) return null;
    // The worker runs listAndGet itself (its compiled source): one definition of how xattrs are read.
    // A path with a name the binding cannot return comes back in `notUtf8`, for getfattr.
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const binding = require(workerData.file);
      const listAndGet = ${listAndGet.toString()};
      parentPort.on('message', ({ id, paths }) => {
        const found = [];
        const failures = [];
        const notUtf8 = [];
        paths.forEach((path, k) => {
          let failed = false;
          const xattrs = listAndGet(binding, path, (err) => {
            const message = String(err && err.message);
            if (new RegExp(workerData.notUtf8).test(message)) {
              if (!failed) notUtf8.push(k);
              failed = true;
              return;
            }
            const errno = Number(/os error (\\d+)/.exec(message)?.[1]);
            if (!workerData.ignored.includes(errno)) failures.push(path + ': ' + message);
          });
          if (xattrs.length && !failed) found.push([k, xattrs]);
        });
        parentPort.postMessage({ id, found, failures, notUtf8 });
      });`;
    const worker = new Worker(code, {
      eval: true,
      workerData: {
        file,
        ignored: [...TOLERATED_ERRNO, ...VANISHED_ERRNO],
        notUtf8: NOT_UTF8_NAME.source,
      },
    });
    // Never what keeps the process alive: a failed walk ends without waiting on it.
    worker.unref();
    worker.on(
      'message',
      (m: {
        id: number;
        found: Array<[number, Array<[string, Uint8Array]>]>;
        failures: string[];
        notUtf8: number[];
      }) => {
        const job = this.waiting.get(m.id)!;
        this.waiting.delete(m.id);
        try {
          for (const [k, xattrs] of m.found) {
            const read = xattrs.map(([n, v]): [string, Buffer] => [
              n,
              Buffer.from(v.buffer, v.byteOffset, v.byteLength),
            ]);
            this.keep(job.indices[k], job.paths[k], () => read);
          }
          for (const k of m.notUtf8)
            this.keep(job.indices[k], job.paths[k], () => readXattrsWithGetfattr(job.paths[k]));
        } catch (err) {
          this.failure ??= err as Error;
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
  if (NOT_UTF8_NAME.test(String((err as Error)?.message))) throw new NotUtf8NameError(String(err));
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
      `cannot read the extended attributes of ${show(path)} (non-UTF-8 paths and names are read with getfattr, package "attr"): ${why.trim() || res.error?.message}`,
    );
  }
  // getfattr prints a name's bytes as they are, except backslash, `=`, newline and CR, written as
  // `\ooo` (octal): unescaped, the name is a latin1 string of its bytes again.
  const out: Xattrs = [];
  for (const line of res.stdout.split('\n')) {
    const m = /^([^#=][^=]*)=(?:0s(.*))?$/.exec(line);
    if (!m) continue;
    const name = m[1].replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
    out.push([name, Buffer.from(m[2] ?? '', 'base64')]);
  }
  return out.length ? out : undefined;
}
