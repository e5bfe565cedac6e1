import { lstat } from 'node:fs/promises';
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import path from 'node:path';
import { show, type Logger } from '../log.js';
import type { Filter } from '../walk/filter.js';
import type { Mount } from '../walk/mountinfo.js';
import type { Entry } from '../walk/entries.js';
import { walk, type Exclusion } from '../walk/walk.js';
import { readXattrs } from '../walk/xattrs.js';
import { groupWhiteouts, type ChangeSet } from './whiteouts.js';
import { UserError } from '../failure.js';

export class OverlayError extends UserError {}

/** overlayfs's own bookkeeping xattrs, in the trusted (root) and user (unprivileged) namespaces. */
const OVERLAY_XATTR = /^(trusted|user)\.overlay\./;

export interface Overlay {
  upper: string;
  work?: string;
}

/** The overlay mounted exactly at `root`, when its upper dir can be read. */
export async function findOverlay(root: string, mounts: Mount[]): Promise<Overlay | null> {
  const resolved = path.resolve(root);
  // The last mount at a path is the one in effect.
  const mount = [...mounts].reverse().find((m) => m.mountPoint.toString() === resolved);
  if (!mount || mount.fsType !== 'overlay') return null;
  const options = splitOptions(mount.superOptions);
  const upper = options.get('upperdir');
  if (!upper) return null;
  try {
    await access(upper, constants.R_OK | constants.X_OK);
  } catch {
    return null; // not visible from here (another mount namespace): fall back to the baseline
  }
  return { upper, work: options.get('workdir') };
}

/** Mount options are comma-separated; a comma inside a value is escaped with a backslash. */
function splitOptions(s: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of s.split(/(?<!\\),/)) {
    const eq = part.indexOf('=');
    if (eq > 0) out.set(part.slice(0, eq), part.slice(eq + 1).replace(/\\,/g, ','));
  }
  return out;
}

/**
 * The overlay's upper dir *is* the change set: an entry there was added or changed (its metadata is
 * read through the merged `root`, which is what the sandbox sees), a character device 0/0 is a
 * deletion, and a directory marked opaque hides everything below it in the lower layers
 * (`.wh..wh..opq`). Renamed directories (`redirect_dir`) are refused: their merged content lives
 * elsewhere in the lower layers.
 */
export async function overlayChanges(
  root: string,
  overlay: Overlay,
  filter: Filter,
  log: Logger,
): Promise<ChangeSet & { excluded: Exclusion[]; unreadable: Buffer[] }> {
  const upper = await walk({ root: overlay.upper, filter, log, keepIdentity: false });
  const rootBuf = Buffer.from(path.resolve(root));
  const entries: Entry[] = [];
  const deletions: Buffer[] = [];
  const opaque: Buffer[] = [];
  let changed = 0;

  for (const e of upper.entries) {
    const names = e.xattrs?.map(([n]) => n) ?? [];
    if (names.some((n) => /^(trusted|user)\.overlay\.redirect$/.test(n))) {
      throw new OverlayError(
        `overlay: /${show(e.path)} was renamed (redirect_dir); use changes: baseline or full`,
      );
    }
    if (e.kind === 'char' && e.devMajor === 0 && e.devMinor === 0) {
      deletions.push(e.path);
      continue;
    }
    const isOpaque =
      e.kind === 'dir' &&
      e.xattrs?.some(([n, v]) => /^(trusted|user)\.overlay\.opaque$/.test(n) && v.toString() === 'y');
    const merged = await mergedEntry(rootBuf, e, log);
    if (!merged) continue;
    entries.push(merged);
    changed++;
    if (isOpaque) opaque.push(e.path);
  }
  const out = groupWhiteouts(entries, deletions, opaque);
  return {
    entries: out,
    changed,
    deleted: deletions.length,
    excluded: upper.excluded,
    unreadable: upper.unreadable,
  };
}

/** The entry as the merged view shows it (metacopy uppers hold only metadata; the data is below). */
async function mergedEntry(rootBuf: Buffer, upperEntry: Entry, log: Logger): Promise<Entry | null> {
  const abs = Buffer.concat([rootBuf, Buffer.from('/'), upperEntry.path]);
  try {
    const st = await lstat(abs, { bigint: true });
    const entry: Entry = {
      ...upperEntry,
      size: st.isFile() ? Number(st.size) : 0,
      allocated: Number(st.blocks) * 512,
    };
    const xattrs = readXattrs(abs, log)?.filter(([n]) => !OVERLAY_XATTR.test(n));
    if (xattrs?.length) entry.xattrs = xattrs;
    else delete entry.xattrs;
    return entry;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}
