/** Paths as raw bytes (relative, `/`-separated): names need not be UTF-8. */

/** True when `child` lies below the directory `dir`. */
export function isInside(child: Buffer, dir: Buffer): boolean {
  return (
    child.length > dir.length &&
    child[dir.length] === 0x2f &&
    child.compare(dir, 0, dir.length, 0, dir.length) === 0
  );
}

/**
 * `dir/name`: `name` alone in an empty `dir`, `/name` in `/`. A string name is latin1, one byte per
 * char (as readdir gives it with that encoding).
 */
export function joinPath(dir: Buffer, name: Buffer | string): Buffer {
  const at = dir.length === 0 ? 0 : dir.length === 1 && dir[0] === 0x2f ? 1 : dir.length + 1;
  const path = Buffer.allocUnsafe(at + name.length);
  dir.copy(path);
  if (at > dir.length) path[dir.length] = 0x2f; // '/'
  if (typeof name === 'string') path.write(name, at, 'latin1');
  else name.copy(path, at);
  return path;
}

/** The parent directory (empty for a top-level entry). */
export function parentOf(p: Buffer): Buffer {
  const i = p.lastIndexOf(0x2f);
  return i < 0 ? Buffer.alloc(0) : p.subarray(0, i);
}

/**
 * A path key (a latin1 string of the path's bytes, as the walk keeps them) as text, for globs: the
 * UTF-8 reading of the bytes (invalid bytes become U+FFFD).
 */
export function latin1KeyToText(key: string): string {
  return Buffer.from(key, 'latin1').toString('utf8');
}
