// The Debian mirror this machine's apt uses, for debootstrap (the tests' Debian rootfs, the bench's
// trees): the repository names no package archive of its own. Plain JavaScript so that the bench
// (run by node without a build) shares it with the TypeScript helpers.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';

/** A security archive (`debian-security`, `bookworm-security`, the old `bookworm/updates`). */
const isSecurity = (uri, suites) =>
  /debian-security/.test(uri) || suites.every((s) => /-security$|\/updates$/.test(s));

/** The URIs of `deb` lines in one-line format (sources.list, sources.list.d/*.list), in order. */
function oneLineUris(text) {
  const uris = [];
  for (const line of text.split('\n')) {
    const fields = line
      .replace(/#.*/, '')
      .replace(/\[[^\]]*\]/, '') // options: [arch=amd64 signed-by=…]
      .trim()
      .split(/\s+/);
    if (fields[0] === 'deb' && fields[1] && !isSecurity(fields[1], [fields[2] ?? ''])) uris.push(fields[1]);
  }
  return uris;
}

/** The URIs of enabled `deb` stanzas in deb822 format (sources.list.d/*.sources), in order. */
function deb822Uris(text) {
  const uris = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const field = (name) =>
      new RegExp(`^${name}:[ \\t]*(.*(?:\\n[ \\t].*)*)`, 'im')
        .exec(stanza.replace(/^#.*\n?/gm, ''))?.[1]
        .trim()
        .split(/\s+/) ?? [];
    if (!field('Types').includes('deb') || field('Enabled')[0] === 'no') continue;
    const suites = field('Suites');
    for (const uri of field('URIs')) if (!isSecurity(uri, suites)) uris.push(uri);
  }
  return uris;
}

/**
 * The first URI of Debian's main archive (not the security one) in apt's configuration, read in apt's
 * order: /etc/apt/sources.list, then sources.list.d/ (`*.list` and `*.sources`) by name.
 */
export function debianMirror(etcApt = '/etc/apt') {
  const files = [path.join(etcApt, 'sources.list')];
  const dir = path.join(etcApt, 'sources.list.d');
  if (existsSync(dir))
    files.push(
      ...readdirSync(dir)
        .sort()
        .map((name) => path.join(dir, name)),
    );
  for (const file of files) {
    if (!existsSync(file)) continue;
    const text = readFileSync(file, 'utf8');
    const uris = file.endsWith('.sources')
      ? deb822Uris(text)
      : file.endsWith('.list')
        ? oneLineUris(text)
        : [];
    if (uris.length) return uris[0];
  }
  throw new Error(
    `no Debian archive in apt's configuration (${etcApt}/sources.list, ${etcApt}/sources.list.d/): debootstrap needs a mirror to build the Debian rootfs`,
  );
}
