import { createHash } from 'node:crypto';
import type { EntryTable } from '../walk/entries.js';

/** Annotation on a layer descriptor: what the layer was made from, so an unchanged one is not re-read. */
export const FINGERPRINT_ANNOTATION = 'dev.depot.snapshot.fingerprint';

/** Bump when the tar bytes for the same entries would change (header format, ordering). */
const FORMAT = 'snapshot-tar/1';

/**
 * A digest of everything that decides a layer's bytes without reading file contents: each entry's
 * path, type, mode, owner, size, mtime in ns, link target, device numbers and xattrs, plus the
 * compression. Like make, rsync and kaniko's "redo" mode, it trusts that content which changed also
 * changed size or mtime. Only metadata the image itself carries goes in (no inode, no ctime), so the
 * same tree gives the same fingerprint on any machine.
 */
export function fingerprint(
  entries: EntryTable,
  indices: number[],
  compression: string,
  level: number,
): string {
  const h = createHash('sha256');
  // Gathered as latin1 text (one char per byte) and hashed 64 KiB at a time: a few hash calls per
  // entry cost more than the hashing itself.
  let text = `${FORMAT} ${compression} ${level}\n`;
  const groups = new Map<string, number>();
  for (const i of indices) {
    const e = entries.get(i);
    // Hardlink groups by their order of appearance in the layer: inode numbers differ across machines.
    const group = e.linkGroup
      ? (groups.get(e.linkGroup) ?? groups.set(e.linkGroup, groups.size).get(e.linkGroup))
      : -1;
    text +=
      e.path.toString('latin1') +
      `\0${e.kind} ${e.mode} ${e.uid} ${e.gid} ${e.size} ${e.mtimeSec}.${e.mtimeNsec} ${e.devMajor ?? ''} ${e.devMinor ?? ''} ${group}\0`;
    if (e.linkTarget) text += e.linkTarget.toString('latin1');
    for (const [name, value] of e.xattrs ?? [])
      text += `\0${name}=${value.length}:${value.toString('latin1')}`; // names are latin1 already
    // Content given instead of the file's (a scrubbed git config) is small: hashed itself.
    if (e.content) text += `\0content:${createHash('sha256').update(e.content).digest('hex')}`;
    text += '\n';
    if (text.length >= 65536) {
      h.update(text, 'latin1');
      text = '';
    }
  }
  h.update(text, 'latin1');
  return 'sha256:' + h.digest('hex');
}
