import { lstat, mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from '../log.js';
import type { NewLayer } from './build.js';
import { MARKER_COMMENT, MARKER_PATH, type Marker } from './marker.js';
import { EntryTable } from '../walk/entries.js';
import { splitNs } from '../walk/directory.js';
import type { Compression } from '../layer/compress.js';
import { DISCARD, type BlobSink } from '../content/blob.js';
import { writeLayer } from '../layer/write.js';

/**
 * The marker's own layer: the one file, owned by root, mode 0644, dated `created`, so the same image
 * always gets the same marker layer. Its parent `/etc` is not written: the layers below have it.
 */
export async function writeMarkerLayer(
  marker: Marker,
  opts: { compression: Compression; level: number; log: Logger },
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
    const input = { root: dir, entries: EntryTable.from([entry]), indices: [0], ...opts };
    // A few hundred bytes: digest them first, so an unchanged marker is not sent again.
    const dry = await writeLayer(input, DISCARD);
    const r = (await exists(dry.descriptor.digest)) ? dry : await writeLayer(input, sink);
    return { descriptor: r.descriptor, diffId: r.diffId, comment: `${MARKER_COMMENT} /${MARKER_PATH}` };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
