import { access, lstat, stat } from 'node:fs/promises';
import { accessSync, constants, statSync } from 'node:fs';
import { InputError } from '../failure.js';
import path from 'node:path';
import { show, type Logger } from '../log.js';
import type { Filter } from '../walk/filter.js';
import type { Mount } from '../walk/mountinfo.js';
import type { Entry } from '../walk/entries.js';
import { walk, type Exclusion } from '../walk/walk.js';
import { readXattrs } from '../walk/xattrs.js';
import { groupWhiteouts, type ChangeSet } from './whiteouts.js';
import { UserError } from '../failure.js';
import type { ChangeSource } from './source.js';

export class OverlayError extends UserError {}

/** overlayfs's own bookkeeping xattrs, in the trusted (root) and user (unprivileged) namespaces. */
const OVERLAY_XATTR = /^(trusted|user)\.overlay\./;

export interface Overlay {
  upper: string;
  /** overlayfs's scratch directory, when it can be found from here. */
  work?: string;
  /** mountinfo shows an overlay mounted at root (false: only the `upper` input says so). */
  mounted: boolean;
  /** The upper dir came from the `upper` input rather than from mountinfo. */
  given: boolean;
  /** The lower dirs mountinfo names, top first, when every one can be read from here: the tree before the changes. */
  lower?: string[];
}

/**
 * The overlay of `root`: the one mountinfo shows mounted exactly there, with its upper dir read at
 * `given` (the `upper` input) when set, else at the path mountinfo names when this process can read it.
 * `given` alone is enough: mountinfo may not show the overlay at all (a root that was pivoted into).
 */
export async function findOverlay(root: string, mounts: Mount[], given = ''): Promise<Overlay | null> {
  const resolved = path.resolve(root);
  // The last mount at a path is the one in effect.
  const mount = [...mounts].reverse().find((m) => m.mountPoint.toString() === resolved);
  const options = mount?.fsType === 'overlay' ? splitOptions(mount.superOptions) : null;
  const mounted = options !== null;
  const upper = options?.get('upperdir');
  const work = options?.get('workdir');
  const lowerDirs = options
    ?.get('lowerdir')
    ?.split(/(?<!\\):/)
    .map((d) => d.replace(/\\:/g, ':'));
  const lower = lowerDirs?.length && lowerDirs.every(isReadableDir) ? { lower: lowerDirs } : {};
  if (given) {
    // mountinfo's paths are from the mounter's view; the work dir usually sits beside the upper dir.
    const beside =
      upper && work && path.dirname(upper) === path.dirname(work)
        ? path.join(path.dirname(given), path.basename(work))
        : undefined;
    const found = [beside, work].find((d) => d !== undefined && isReadableDir(d));
    // The lower dirs' paths are as trustworthy as the upper's: only when mountinfo's upper is the one given.
    const sameUpper = upper !== undefined && sameDir(upper, given);
    return {
      upper: given,
      ...(found ? { work: found } : {}),
      mounted,
      given: true,
      ...(sameUpper ? lower : {}),
    };
  }
  if (!upper || !isReadableDir(upper)) return null; // not visible from here: set upper, or use the baseline
  return { upper, ...(work && isReadableDir(work) ? { work } : {}), mounted, given: false, ...lower };
}

/**
 * The overlay's own storage (upper and work dirs) when it lies inside root, as with `/rw/.snap/upper`
 * under `/`: never part of the capture, which would otherwise hold every change twice.
 */
export function overlayStorage(overlay: Overlay | null): string[] {
  return overlay ? [overlay.upper, overlay.work ?? ''].filter(Boolean) : [];
}

/** Refuses an `upper` input that cannot be the upper dir of root, with one line saying why. */
export async function checkUpper(upper: string, root: string): Promise<void> {
  const st = await stat(upper).catch((err: NodeJS.ErrnoException) => {
    const why = err.code === 'ENOENT' ? 'does not exist' : `cannot be read: ${err.code ?? err.message}`;
    throw new InputError(
      `upper ${upper} ${why}; give the overlay's upper dir as this job sees it (e.g. /rw/.snap/upper)`,
    );
  });
  if (!st.isDirectory())
    throw new InputError(
      `upper ${upper} is not a directory; give the overlay's upper dir as this job sees it`,
    );
  if (path.resolve(upper) === path.resolve(root))
    throw new InputError(`upper ${upper} is root itself; give the overlay's upper dir, not its merged view`);
  await access(upper, constants.R_OK | constants.X_OK).catch(() => {
    throw new InputError(
      `upper ${upper} cannot be read: permission denied; run the step as root or with sudo`,
    );
  });
}

function sameDir(a: string, b: string): boolean {
  try {
    const [x, y] = [statSync(a), statSync(b)];
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}

function isReadableDir(dir: string): boolean {
  try {
    accessSync(dir, constants.R_OK | constants.X_OK);
    return statSync(dir).isDirectory();
  } catch {
    return false;
  }
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

/** The overlay's upper dir as the change set (see overlayChanges). */
export function overlaySource(overlay: Overlay): ChangeSource {
  return {
    read({ root, filter, log }) {
      if (overlay.given && !overlay.mounted)
        log.warn(
          `mountinfo shows no overlay mounted at ${root}: taking upper ${overlay.upper} as its upper dir, as given`,
        );
      return overlayChanges(root, overlay, filter, log);
    },
  };
}

/**
 * The overlay's upper dir *is* the change set: an entry there was added or changed (its metadata is
 * read through the merged `root`, which is what the sandbox sees), a character device 0/0 is a
 * deletion, and a directory marked opaque hides everything below it in the lower layers
 * (`.wh..wh..opq`). Renamed directories (`redirect_dir`) are refused: their merged content lives
 * elsewhere in the lower layers.
 */
async function overlayChanges(
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
