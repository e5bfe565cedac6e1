import { PackageURL } from 'packageurl-js';
import type { Package } from './inventory.js';
import type { Tree } from './tree.js';

/** The header of a METADATA/PKG-INFO file comes first; its long description is not needed. */
const HEADER_BYTES = 64 << 10;

/**
 * Python distributions: `*.dist-info/METADATA` (wheels, pip) and `*.egg-info` (`PKG-INFO` inside the
 * directory, or the file itself: Debian's python3-* packages) in the `site-packages` and
 * `dist-packages` of each `lib/python3*` under the given prefixes. A directory reached twice
 * (through a symlink) is read once.
 */
export async function readPython(tree: Tree, prefixes: string[]): Promise<Package[]> {
  const found: Package[] = [];
  const seen = new Set<string>();
  for (const prefix of prefixes) {
    for (const lib of await tree.list(`${prefix}/lib`)) {
      if (!/^python3(\.\d+)?$/.test(lib)) continue;
      for (const kind of ['site-packages', 'dist-packages']) {
        const resolved = await tree.resolve(`${prefix}/lib/${lib}/${kind}`);
        if (!resolved || seen.has(resolved.join('/'))) continue;
        seen.add(resolved.join('/'));
        found.push(...(await readSitePackages(tree, resolved.join('/'))));
      }
    }
  }
  return found;
}

async function readSitePackages(tree: Tree, dir: string): Promise<Package[]> {
  const found: Package[] = [];
  for (const name of await tree.list(dir)) {
    let location: string;
    if (name.endsWith('.dist-info')) location = `${dir}/${name}/METADATA`;
    else if (name.endsWith('.egg-info'))
      location = (await tree.isFile(`${dir}/${name}`)) ? `${dir}/${name}` : `${dir}/${name}/PKG-INFO`;
    else continue;
    const text = await tree.read(location, HEADER_BYTES);
    if (text === null) continue;
    const header = parseHeader(text);
    const distribution = header.get('name');
    const version = header.get('version');
    if (!distribution || !version) {
      tree.unreadable++;
      continue;
    }
    found.push({
      ecosystem: 'pypi',
      name: distribution,
      version,
      location,
      // packageurl-js normalises the name as the purl spec says for pypi (lowercase, `_` → `-`).
      purl: new PackageURL('pypi', undefined, distribution, version).toString(),
    });
  }
  return found;
}

/** The core metadata header (RFC 822): the fields before the first blank line, names lowercased. */
function parseHeader(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') break;
    const at = line.indexOf(':');
    if (at <= 0 || line.startsWith(' ')) continue;
    const key = line.slice(0, at).toLowerCase();
    if (!fields.has(key)) fields.set(key, line.slice(at + 1).trim());
  }
  return fields;
}
