import { constants } from 'node:fs';
import { lstat, open, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import { silentLogger } from '../log.js';
import { readXattrs } from '../walk/xattrs.js';

/**
 * A tree read as a chroot would see it: paths are resolved under its root, a symlink's absolute
 * target starts again at the root and `..` stops there, so no link in the tree (however hostile)
 * makes us read a file of the host. Several roots make one merged view, first root first (an
 * overlay's lower dirs): a name is taken from the first root that has it, a whiteout there (a
 * character device 0/0) hides it in those below, and so does an opaque directory all it held there.
 */
export class Tree {
  /** Files and entries that were there but could not be read or parsed. */
  unreadable = 0;

  constructor(private readonly roots: string[]) {}

  /**
   * The resolved components of `rel` (relative to the tree's root, `/`-separated), every symlink
   * followed inside the tree; null when a component is missing or the links loop.
   */
  async resolve(rel: string): Promise<string[] | null> {
    const pending = rel.split('/');
    const resolved: string[] = [];
    let hops = 0;
    while (pending.length) {
      const name = pending.shift()!;
      if (name === '' || name === '.') continue;
      if (name === '..') {
        resolved.pop(); // at the root, `..` is the root
        continue;
      }
      const found = await this.lstatIn([...resolved, name]);
      if (!found) return null;
      if (found.stats.isSymbolicLink()) {
        if (++hops > 40) return null; // ELOOP, as the kernel would say
        const target = await readlink(found.hostPath).catch(() => null);
        if (target === null) return null;
        if (target.startsWith('/')) resolved.length = 0;
        pending.unshift(...target.split('/'));
        continue;
      }
      resolved.push(name);
    }
    return resolved;
  }

  /** The names in the directory `rel` (merged over every root), or [] when it is not one. */
  async list(rel: string): Promise<string[]> {
    const parts = await this.resolve(rel);
    if (!parts) return [];
    const names = new Set<string>();
    const hidden = new Set<string>();
    for (const root of this.roots) {
      const dir = path.join(root, ...parts);
      const st = await lstat(dir).catch(() => null);
      if (!st) continue;
      if (!st.isDirectory()) break; // a file here hides any directory below it
      for (const d of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
        if (hidden.has(d.name)) continue;
        if (d.isCharacterDevice()) hidden.add(d.name);
        else names.add(d.name);
      }
      if (this.roots.length > 1 && isOpaque(dir)) break; // deleted and made again above the rest
    }
    return [...names].sort();
  }

  /**
   * The text of the regular file `rel`, at most `limit` bytes of it; null when it is missing or not
   * a regular file. Opened without following a last symlink (resolve followed them all) and without
   * blocking, so a fifo or device placed there is refused, not waited on.
   */
  async read(rel: string, limit: number): Promise<string | null> {
    const parts = await this.resolve(rel);
    const found = parts && (await this.lstatIn(parts));
    if (!found || !found.stats.isFile()) return null;
    const file = await open(
      found.hostPath,
      constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK,
    ).catch(() => null);
    if (!file) {
      this.unreadable++;
      return null;
    }
    try {
      if (!(await file.stat()).isFile()) return null;
      const buffer = Buffer.alloc(Math.min(limit, found.stats.size));
      const { bytesRead } = await file.read(buffer, 0, buffer.length, 0);
      return buffer.toString('utf8', 0, bytesRead);
    } catch {
      this.unreadable++;
      return null;
    } finally {
      await file.close();
    }
  }

  /** Whether `rel` resolves to a regular file. */
  async isFile(rel: string): Promise<boolean> {
    const parts = await this.resolve(rel);
    const found = parts && (await this.lstatIn(parts));
    return !!found && found.stats.isFile();
  }

  /** The entry at already-resolved `parts` in the first root that has it; a whiteout is none. */
  private async lstatIn(parts: string[]) {
    for (const root of this.roots) {
      const hostPath = path.join(root, ...parts);
      const stats = await lstat(hostPath).catch(() => null);
      if (!stats) continue;
      if (stats.isCharacterDevice() && stats.rdev === 0 && this.roots.length > 1) return null;
      return { hostPath, stats };
    }
    return null;
  }
}

/** overlayfs marks a directory that hides what the layers below held in it (trusted. as root, user. without). */
function isOpaque(dir: string): boolean {
  let xattrs: Array<[string, Buffer]>;
  try {
    xattrs = readXattrs(Buffer.from(dir), silentLogger) ?? [];
  } catch {
    return false; // unreadable: taken as plain, as it most likely is
  }
  return xattrs.some(
    ([name, value]) => /^(trusted|user)\.overlay\.opaque$/.test(name) && value.toString() === 'y',
  );
}
