import type { Ecosystem, Inventory, Package } from './inventory.js';

/** What changed in one ecosystem between two inventories. */
export interface EcosystemChanges {
  added: Package[];
  removed: Package[];
  /** The same package (see `slot`) at another version: usually an upgrade, a downgrade counts too. */
  upgraded: Array<{ from: Package; to: Package }>;
}

export interface SetupChanges {
  /** Only the ecosystems where something changed. */
  ecosystems: Partial<Record<Ecosystem, EcosystemChanges>>;
  path: { gained: string[]; lost: string[] };
}

/**
 * Where a package can be at one version only: a version change there is an upgrade, not an addition.
 * A dpkg package per architecture (`libc6:amd64`, `libc6:i386`), an apk package, an npm global per
 * `node_modules` directory, a Python distribution per site-packages directory (names normalised, as
 * pip compares them). Tool cache versions sit side by side (Node 20 and 22): each is its own.
 */
function slot(p: Package): string {
  switch (p.ecosystem) {
    case 'deb':
      return `${p.name}:${p.arch ?? ''}`;
    case 'apk':
      return p.name;
    case 'npm':
      return `${p.location.slice(0, p.location.lastIndexOf('/node_modules/'))}\0${p.name}`;
    case 'pypi':
      return `${/^(.*\/(?:site|dist)-packages)\//.exec(p.location)?.[1]}\0${p.name.toLowerCase().replace(/[-_.]+/g, '-')}`;
    case 'toolcache':
      return `${p.name}\0${p.version}\0${p.arch ?? ''}`;
  }
}

/** Per ecosystem what was added, removed and upgraded from `before` to `after`; PATH entries gained and lost. */
export function compareInventories(before: Inventory, after: Inventory): SetupChanges {
  const ecosystems: SetupChanges['ecosystems'] = {};
  const bySlot = (inv: Inventory) => new Map(inv.packages.map((p) => [`${p.ecosystem}\0${slot(p)}`, p]));
  const old = bySlot(before);
  const now = bySlot(after);
  const entry = (e: Ecosystem) => (ecosystems[e] ??= { added: [], removed: [], upgraded: [] });
  for (const [key, p] of now) {
    const was = old.get(key);
    if (!was) entry(p.ecosystem).added.push(p);
    else if (was.version !== p.version) entry(p.ecosystem).upgraded.push({ from: was, to: p });
  }
  for (const [key, p] of old) if (!now.has(key)) entry(p.ecosystem).removed.push(p);
  const had = new Set(before.path);
  const has = new Set(after.path);
  return {
    ecosystems,
    path: {
      gained: [...new Set(after.path.filter((p) => !had.has(p)))],
      lost: [...new Set(before.path.filter((p) => !has.has(p)))],
    },
  };
}
