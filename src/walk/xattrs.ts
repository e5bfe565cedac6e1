import { isUtf8 } from 'node:buffer';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
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
 * are never followed). The bundle carries the glibc builds for x64 and arm64 runners in dist/native/;
 * from source, the npm package resolves its own. Loaded by hand because the package's loader cannot
 * find its `.node` file once bundled.
 */
function loadBinding(): Binding | null {
  const require = createRequire(import.meta.url);
  const candidates = [`./native/xattr.linux-${process.arch}-gnu.node`, '@napi-rs/xattr'];
  for (const candidate of candidates) {
    try {
      return require(candidate) as Binding;
    } catch {
      // try the next one
    }
  }
  return null;
}

let binding: Binding | null | undefined;

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
  if (binding === undefined) {
    binding = loadBinding();
    if (!binding)
      log.warn(
        `no xattr support for ${process.platform}-${process.arch} in this build: extended attributes (file capabilities too) are not captured`,
      );
  }
  if (!binding) return undefined;
  let names: string[];
  try {
    names = binding.listAttributesSync(text);
  } catch (err) {
    return tolerate(err);
  }
  if (names.length === 0) return undefined;
  const out: Xattrs = [];
  for (const name of names) {
    if (SKIPPED.has(name)) continue;
    let value: Buffer | null;
    try {
      value = binding.getAttributeSync(text, name);
    } catch (err) {
      tolerate(err);
      continue; // removed between list and get
    }
    if (value) out.push([name, Buffer.from(value)]);
  }
  // By name, so the fingerprint and the tar header do not depend on the order the kernel lists them.
  out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return out.length ? out : undefined;
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
