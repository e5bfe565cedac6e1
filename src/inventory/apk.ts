import { PackageURL } from 'packageurl-js';
import type { Inventory, Package } from './inventory.js';
import { stanzas } from './stanzas.js';
import type { Tree } from './tree.js';

const INSTALLED = 'lib/apk/db/installed';

/** Alpine (apk) packages, from apk's installed database: `P:` name, `V:` version, `A:` arch, `o:` origin. */
export async function readApk(tree: Tree, os: Inventory['os']): Promise<Package[]> {
  const text = await tree.read(INSTALLED, 64 << 20);
  if (text === null) return [];
  const found: Package[] = [];
  for (const s of stanzas(text, false)) {
    const name = s.get('P');
    const version = s.get('V');
    if (!name || !version) {
      tree.unreadable++;
      continue;
    }
    const arch = s.get('A');
    const origin = s.get('o');
    const source = origin && origin !== name ? origin : undefined;
    found.push({
      ecosystem: 'apk',
      name,
      version,
      ...(arch ? { arch } : {}),
      ...(source ? { source } : {}),
      location: INSTALLED,
      purl: new PackageURL('apk', os?.id ?? 'alpine', name, version, {
        ...(arch ? { arch } : {}),
        ...(os?.versionId ? { distro: `${os.id}-${os.versionId}` } : {}),
        ...(source ? { upstream: source } : {}),
      }).toString(),
    });
  }
  return found;
}
