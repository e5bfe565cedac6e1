import { PackageURL } from 'packageurl-js';
import type { Package } from './inventory.js';
import type { Tree } from './tree.js';

/**
 * Globally installed npm packages: `lib/node_modules/<name>` and `lib/node_modules/@scope/<name>`
 * under each prefix (`usr/local`, `usr`, and the one of each `…/bin` on PATH), each read from its
 * package.json. A prefix reached twice (through a symlink) is read once.
 */
export async function readNpm(tree: Tree, prefixes: string[]): Promise<Package[]> {
  const found: Package[] = [];
  const seen = new Set<string>();
  for (const prefix of prefixes) {
    const modules = `${prefix}/lib/node_modules`;
    const resolved = await tree.resolve(modules);
    if (!resolved || seen.has(resolved.join('/'))) continue;
    seen.add(resolved.join('/'));
    const dir = resolved.join('/');
    for (const name of await tree.list(dir)) {
      if (name.startsWith('.')) continue; // npm's .bin, .package-lock.json, staging dirs
      const names = name.startsWith('@')
        ? (await tree.list(`${dir}/${name}`)).filter((n) => !n.startsWith('.')).map((n) => `${name}/${n}`)
        : [name];
      for (const n of names) {
        const pkg = await readPackageJson(tree, `${dir}/${n}/package.json`);
        if (pkg) found.push(pkg);
      }
    }
  }
  return found;
}

async function readPackageJson(tree: Tree, location: string): Promise<Package | null> {
  const text = await tree.read(location, 1 << 20);
  if (text === null) return null;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    tree.unreadable++;
    return null;
  }
  const { name, version } = (json ?? {}) as { name?: unknown; version?: unknown };
  if (typeof name !== 'string' || typeof version !== 'string' || !name || !version) {
    tree.unreadable++;
    return null;
  }
  const scoped = /^(@[^/]+)\/(.+)$/.exec(name);
  return {
    ecosystem: 'npm',
    name,
    version,
    location,
    purl: new PackageURL('npm', scoped?.[1], scoped?.[2] ?? name, version).toString(),
  };
}
