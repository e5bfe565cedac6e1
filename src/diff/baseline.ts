import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { isInside } from '../util/paths.js';
import type { Entry, EntryTable } from '../walk/entries.js';
import { readXattrsOf, walk, type Exclusion } from '../walk/walk.js';
import { changeSet, leftOutBy, type ChangeSet } from './whiteouts.js';
import { UserError } from '../failure.js';
import { writeAtomically } from '../util/atomic.js';
import type { ChangeSource } from './source.js';
import type { Logger } from '../log.js';

/**
 * The baseline: what the tree looked like when the job started, recorded by the `pre` step and
 * compared by the main step. One gzipped text line per entry, in walk order (depth first, children by
 * raw name bytes), so both sides are read as streams and merged without holding the index in memory.
 */
const MAGIC = 'depot-snapshot-baseline 1';

export class BaselineError extends UserError {}

/** What to do about a baseline that cannot be used. */
const RECORD_AGAIN = 'record it again (the pre step, with the same inputs) or set changes: full';

/** What a baseline line holds: everything whose change means the entry must be captured again. */
interface Record {
  path: Buffer;
  kind: string;
  /** The rest of the line: mode, owner, size, times, inode, link, devices, xattr digest. */
  state: string;
}

function stateOf(e: Entry): string {
  return `${statusOf(e)} ${xattrDigest(e)}`;
}

/**
 * A line's state but its xattr digest: what lstat tells. Any change of an xattr moves ctime (as chmod,
 * chown and writes do), so an entry whose status is as recorded has its recorded xattrs too, and the
 * comparison never reads them.
 */
function statusOf(e: Entry): string {
  const link = e.linkTarget ? e.linkTarget.toString('base64') : '-';
  const dev = e.devMajor !== undefined ? `${e.devMajor}:${e.devMinor}` : '-';
  return `${e.mode} ${e.uid} ${e.gid} ${e.size} ${e.mtimeSec}.${e.mtimeNsec} ${e.ctimeSec}.${e.ctimeNsec} ${e.ino} ${link} ${dev}`;
}

/** The status part of a line's state (see statusOf). */
function recordedStatus(state: string): string {
  return state.slice(0, state.lastIndexOf(' '));
}

/** A baseline line holds ctime and inode: a table walked without them would differ everywhere. */
function requireIdentity(entries: EntryTable): void {
  if (!entries.keepsIdentity) throw new Error('a baseline needs entries walked with keepIdentity');
}

function xattrDigest(e: Entry): string {
  if (!e.xattrs?.length) return '-';
  const h = createHash('sha256');
  // Names are latin1 strings of their bytes: hashed as those bytes.
  for (const [name, value] of e.xattrs) h.update(`${name}=${value.length}:`, 'latin1').update(value);
  return h.digest('base64url').slice(0, 22);
}

/** Writes the baseline of `entries` atomically (a half-written file never passes for a baseline). */
export async function writeBaseline(file: string, root: string, entries: EntryTable): Promise<void> {
  requireIdentity(entries);
  // It lists the whole filesystem (names, owners, inodes): for its owner's eyes only, whatever the umask.
  async function* lines() {
    yield `${MAGIC} ${Buffer.from(root).toString('base64')}\n`;
    let batch = '';
    for (const e of entries) {
      batch += `${e.path.toString('base64')} ${e.kind} ${stateOf(e)}\n`;
      if (batch.length > 1 << 16) {
        yield batch;
        batch = '';
      }
    }
    yield batch + 'end\n';
  }
  // Interrupted while writing: the partial file goes, whatever baseline was there stays.
  await writeAtomically(file, 'baseline', (tmp) =>
    pipeline(Readable.from(lines()), zlib.createGzip({ level: 1 }), createWriteStream(tmp, { mode: 0o600 })),
  );
}

/**
 * Reads a baseline back as a stream of records, a chunk's worth at a time (a promise per line was a
 * tenth of a no-change re-snapshot), refusing a corrupt, truncated or foreign file.
 */
async function* readBaseline(file: string, root: string): AsyncGenerator<Record[]> {
  // Errors of the file and of gunzip are kept here, never left unheard on a stream: a damaged
  // baseline must end as one clear line, not an uncaught 'error' event.
  let streamError: Error | undefined;
  const source = createReadStream(file);
  const gunzip = zlib.createGunzip();
  source.on('error', (err) => gunzip.destroy(err));
  gunzip.on('error', (err) => (streamError ??= err));
  let header = true;
  let ended = false;
  let rest = '';
  try {
    for await (const chunk of source.pipe(gunzip)) {
      // The file is ASCII (base64 paths, numbers): latin1 decodes it fastest.
      const lines = (rest + (chunk as Buffer).toString('latin1')).split('\n');
      rest = lines.pop()!;
      const records: Record[] = [];
      for (const line of lines) {
        if (header) {
          const [magic, rootB64] = [line.slice(0, MAGIC.length), line.slice(MAGIC.length + 1)];
          if (magic !== MAGIC)
            throw new BaselineError(`${file} is not a baseline written by this action; ${RECORD_AGAIN}`);
          const recorded = Buffer.from(rootB64, 'base64').toString();
          if (recorded !== root)
            throw new BaselineError(
              `${file} records ${recorded}, not ${root}; record the baseline of the same root`,
            );
          header = false;
          continue;
        }
        if (line === 'end') {
          ended = true;
          continue;
        }
        const space1 = line.indexOf(' ');
        const space2 = line.indexOf(' ', space1 + 1);
        if (ended || space1 <= 0 || space2 < 0)
          throw new BaselineError(`${file} is corrupt (a malformed line); ${RECORD_AGAIN}`);
        records.push({
          path: Buffer.from(line.slice(0, space1), 'base64'),
          kind: line.slice(space1 + 1, space2),
          state: line.slice(space2 + 1),
        });
      }
      yield records;
    }
  } catch (err) {
    throw err instanceof BaselineError ? err : baselineReadError(file, streamError ?? (err as Error));
  } finally {
    source.destroy();
    gunzip.destroy();
  }
  if (streamError) throw baselineReadError(file, streamError);
  if (header || !ended || rest !== '')
    throw new BaselineError(`${file} is truncated: the baseline was not written completely; ${RECORD_AGAIN}`);
}

function baselineReadError(file: string, err: Error): BaselineError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new BaselineError(`no baseline at ${file}: the pre step did not record one`);
  return new BaselineError(`${file} is unreadable or corrupt (${code ?? err.message}); ${RECORD_AGAIN}`);
}

/** Walk order: depth first with children sorted by raw bytes, i.e. bytes compared with `/` lowest. */
export function compareWalkOrder(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] === b[i]) continue;
    const x = a[i] === 0x2f ? -1 : a[i];
    const y = b[i] === 0x2f ? -1 : b[i];
    return x - y;
  }
  return a.length - b.length;
}

/**
 * The walk of the root compared with the baseline at `file`: what differs, and whiteouts for what is
 * gone. The walk keeps ctime and inode, which the baseline's lines hold, and reads no xattrs: only
 * those of the entries captured are read, after the comparison (see statusOf).
 */
export function baselineSource(file: string): ChangeSource {
  return {
    async read({ root, filter, log, counters }) {
      const scan = await walk({ root, filter, log, keepIdentity: true, deferXattrs: true, counters });
      const set = await diffAgainstBaseline(file, root, scan.entries, scan.excluded, scan.sockets, log);
      return { ...set, scan, excluded: scan.excluded, unreadable: scan.unreadable };
    },
  };
}

/**
 * Compares the tree now with its baseline: new or different entries are captured (with their parent
 * directories, so each change lands with the right metadata around it), vanished ones become
 * whiteouts: one per deleted subtree, none under a deleted parent, none for paths left out of the
 * capture, and written right after their parent directory, before its other entries. An entry whose
 * type changed gets a whiteout too, then its new self.
 */
async function diffAgainstBaseline(
  file: string,
  root: string,
  entries: EntryTable,
  excluded: Exclusion[],
  sockets: Buffer[],
  log: Logger,
): Promise<ChangeSet> {
  requireIdentity(entries);
  const isLeftOut = leftOutBy(excluded, sockets);

  const include = new Uint8Array(entries.length);
  const deletions: Buffer[] = [];
  let changed = 0;
  const addWhiteout = (p: Buffer) => deletions.push(p);

  let i = 0;
  let gone: Buffer | null = null; // a deleted directory: its old contents need no whiteouts of their own
  for await (const batch of readBaseline(file, root)) {
    for (const rec of batch) {
      if (gone && isInside(rec.path, gone)) continue;
      gone = null;
      while (i < entries.length && compareWalkOrder(entries.path(i), rec.path) < 0) {
        include[i++] = 1; // new since the baseline
        changed++;
      }
      const e = i < entries.length ? entries.get(i) : undefined;
      if (e && e.path.equals(rec.path)) {
        if (e.kind !== rec.kind) {
          addWhiteout(rec.path);
          if (rec.kind === 'dir') gone = rec.path;
          include[i] = 1;
          changed++;
        } else if (statusOf(e) !== recordedStatus(rec.state)) {
          include[i] = 1;
          changed++;
        }
        i++;
      } else if (!isLeftOut(rec.path)) {
        addWhiteout(rec.path);
        if (rec.kind === 'dir') gone = rec.path;
      }
    }
  }

  for (; i < entries.length; i++, changed++) include[i] = 1;

  // Parent directories of every change and of every whiteout come along; only the entries taken
  // have their xattrs read.
  return changeSet({
    entries,
    include,
    deletions,
    opaque: [],
    changed,
    complete: (taken) => readXattrsOf(root, entries, taken, log),
  });
}
