/** Paths as raw bytes (relative, `/`-separated): names need not be UTF-8. */

/** True when `child` lies below the directory `dir`. */
export function isInside(child: Buffer, dir: Buffer): boolean {
  return (
    child.length > dir.length &&
    child[dir.length] === 0x2f &&
    child.compare(dir, 0, dir.length, 0, dir.length) === 0
  );
}

/** The parent directory (empty for a top-level entry). */
export function parentOf(p: Buffer): Buffer {
  const i = p.lastIndexOf(0x2f);
  return i < 0 ? Buffer.alloc(0) : p.subarray(0, i);
}
