import { lstat, mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from '../log.js';
import type { NewLayer } from './build.js';
import { MARKER_COMMENT, MARKER_PATH, type Marker } from './marker.js';
import { EntryTable, type Entry } from '../walk/entries.js';
import { lstatOf, splitNs } from '../walk/directory.js';
import { entryOf } from '../walk/walk.js';
import { readXattrs } from '../walk/xattrs.js';
import type { Compression } from '../layer/compress.js';
import { DISCARD, type BlobSink } from '../content/blob.js';
import { writeLayer } from '../layer/write.js';

/**
 * The marker's own layer: the file, owned by root, mode 0644, dated `created`, after its parent
 * `/etc` as the tree has it (`root`), so the same image always gets the same marker layer. Without
 * that entry an overlay runtime (Docker overlay2, containerd, podman) would make `/etc` in this
 * layer as 0755 root:root dated the pull, hiding the real one below.
 */
export async function writeMarkerLayer(
  marker: Marker,
  opts: { root: string; compression: Compression; level: number; log: Logger },
  sink: BlobSink,
  /** Whether the destination already holds a blob. */
  exists: (digest: string) => Promise<boolean>,
): Promise<NewLayer> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'depot-snapshot-marker-'));
  try {
    const file = path.join(dir, MARKER_PATH);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, JSON.stringify(marker, null, 2) + '\n');
    const when = new Date(Date.parse(marker.created));
    await utimes(file, when, when);
    const st = await lstat(file, { bigint: true });
    const { sec, nsec } = splitNs(st.mtimeNs);
    const entry = {
      path: Buffer.from(MARKER_PATH),
      kind: 'file' as const,
      mode: 0o644,
      uid: 0,
      gid: 0,
      size: Number(st.size),
      allocated: Number(st.size),
      mtimeSec: sec,
      mtimeNsec: nsec,
      ctimeSec: 0,
      ctimeNsec: 0,
      ino: 0,
    };
    const etc = etcOf(opts.root, opts.log);
    const input = { ...opts, root: dir, entries: EntryTable.from([etc, entry]), indices: [0, 1] };
    // A few hundred bytes: digest them first, so an unchanged marker is not sent again.
    const dry = await writeLayer(input, DISCARD);
    const r = (await exists(dry.descriptor.digest)) ? dry : await writeLayer(input, sink);
    return { descriptor: r.descriptor, diffId: r.diffId, comment: `${MARKER_COMMENT} /${MARKER_PATH}` };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The tree's `/etc` as the walk takes a directory (mode, owner, mtime, xattrs), with no ctime or inode,
 * which only a baseline compares.
 */
function etcOf(root: string, log: Logger): Entry {
  const abs = path.join(root, path.dirname(MARKER_PATH));
  const xattrs = readXattrs(Buffer.from(abs), log);
  const etc = entryOf(Buffer.from(path.dirname(MARKER_PATH)), lstatOf(Buffer.from(abs)));
  return { ...etc, ctimeSec: 0, ctimeNsec: 0, ino: 0, ...(xattrs && { xattrs }) };
}
