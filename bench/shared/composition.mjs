// What a tree is made of: entries, bytes of regular files, and how many of those bytes are already
// compressed (told by each file's first bytes, not its name), for the results header and the mixed tree.
import { closeSync, lstatSync, openSync, readSync, readdirSync } from 'node:fs';
import path from 'node:path';

/** Leading bytes of formats whose content is already compressed; deflate gains nothing on them. */
const COMPRESSED_MAGIC = [
  // a Debian package is an ar archive of compressed members; a plain `!<arch>` is a static library
  ['deb', Buffer.from('!<arch>\ndebian-binary')],
  ['gzip', Buffer.from([0x1f, 0x8b])],
  ['xz', Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])],
  ['zstd', Buffer.from([0x28, 0xb5, 0x2f, 0xfd])],
  ['bzip2', Buffer.from('BZh')],
  ['lz4', Buffer.from([0x04, 0x22, 0x4d, 0x18])],
  ['7z', Buffer.from([0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c])],
  ['compress', Buffer.from([0x1f, 0x9d])],
  // zip, and what is zip inside: jar, whl, egg, apk, docx
  ['zip', Buffer.from('PK\x03\x04')],
  ['png', Buffer.from([0x89, 0x50, 0x4e, 0x47])],
  ['jpeg', Buffer.from([0xff, 0xd8, 0xff])],
  ['gif', Buffer.from('GIF8')],
  ['woff', Buffer.from('wOFF')],
  ['woff2', Buffer.from('wOF2')],
];
const HEAD = Math.max(...COMPRESSED_MAGIC.map(([, m]) => m.length));

/** The compressed format `file` starts with, or null. */
function compressedKind(file, head) {
  let fd;
  try {
    fd = openSync(file, 'r');
    const n = readSync(fd, head, 0, HEAD, 0);
    return (
      COMPRESSED_MAGIC.find(([, m]) => n >= m.length && head.subarray(0, m.length).equals(m))?.[0] ?? null
    );
  } catch {
    return null; // unreadable: counted as not compressed
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Entries below `root` (the root itself not counted), bytes of regular files (a hard-linked file
 * once, as tar stores it), the bytes in already-compressed files, their `share` of all bytes, and
 * those bytes by format (`byKind`). Reads the first bytes of every file: a few seconds for 150k
 * entries in the page cache.
 */
export function composition(root) {
  const head = Buffer.alloc(HEAD);
  const linked = new Set();
  const byKind = {};
  let entries = 0;
  let bytes = 0;
  let compressed = 0;
  const dirs = [root];
  while (dirs.length) {
    const dir = dirs.pop();
    for (const d of readdirSync(dir, { withFileTypes: true })) {
      entries++;
      const p = path.join(dir, d.name);
      if (d.isDirectory()) dirs.push(p);
      if (!d.isFile()) continue;
      const st = lstatSync(p, { bigint: false });
      if (st.nlink > 1) {
        const id = `${st.dev}:${st.ino}`;
        if (linked.has(id)) continue;
        linked.add(id);
      }
      bytes += st.size;
      const kind = st.size > 0 ? compressedKind(p, head) : null;
      if (kind) {
        compressed += st.size;
        byKind[kind] = (byKind[kind] ?? 0) + st.size;
      }
    }
  }
  return { entries, bytes, compressed, share: bytes ? compressed / bytes : NaN, byKind };
}

/** One line on a composition: entries, bytes, the compressed share and its main formats. */
export function compositionText(c) {
  const kinds = Object.entries(c.byKind)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 5)
    .map(([k, n]) => `${k} ${(n / 1e9).toFixed(2)}`)
    .join(', ');
  return (
    `${c.entries} entries, ${(c.bytes / 1e9).toFixed(3)} GB in regular files, ` +
    `compressed share ${(c.share * 100).toFixed(1)} % (${(c.compressed / 1e9).toFixed(3)} GB already compressed` +
    `${kinds ? `: ${kinds} GB` : ''})`
  );
}
