import { PackageURL } from 'packageurl-js';
import type { Inventory, Package } from './inventory.js';
import { stanzas } from './stanzas.js';
import type { Tree } from './tree.js';

/** The status database dpkg keeps (`dpkg-query -W` reads it), and distroless images' one file per package. */
const STATUS = 'var/lib/dpkg/status';
const STATUS_D = 'var/lib/dpkg/status.d';
/** Ubuntu's full status file is ~5 MB: this is ample, and bounds what a hostile tree makes us read. */
const MAX_STATUS = 64 << 20;

/** Debian/Ubuntu packages that are installed (`Status: … installed`), from dpkg's database. */
export async function readDpkg(tree: Tree, os: Inventory['os']): Promise<Package[]> {
  const found: Package[] = [];
  const text = await tree.read(STATUS, MAX_STATUS);
  if (text !== null) found.push(...parseStatus(text, STATUS, os, tree));
  for (const name of await tree.list(STATUS_D)) {
    if (name.startsWith('.') || name.endsWith('.md5sums')) continue;
    const file = `${STATUS_D}/${name}`;
    const one = await tree.read(file, 1 << 20);
    if (one !== null) found.push(...parseStatus(one, file, os, tree, true));
  }
  return found;
}

function parseStatus(
  text: string,
  location: string,
  os: Inventory['os'],
  tree: Tree,
  distroless = false,
): Package[] {
  const found: Package[] = [];
  for (const s of stanzas(text, true)) {
    const name = s.get('package');
    const version = s.get('version');
    // status.d files carry no Status field: a package is there only while installed.
    const status = s.get('status') ?? (distroless ? 'install ok installed' : '');
    if (!/(^|\s)installed$/.test(status)) continue; // config-files, half-installed, not-installed…
    if (!name || !version) {
      tree.unreadable++;
      continue;
    }
    const arch = s.get('architecture');
    // `Source: glibc (2.36-9)`: the source package, with its version when it differs from the binary's.
    const m = /^(\S+)(?:\s+\((\S+)\))?$/.exec(s.get('source') ?? '');
    const source = m && m[1] !== name ? m[1] : undefined;
    const sourceVersion = m?.[2];
    const upstream =
      m && (source || sourceVersion) ? m[1] + (sourceVersion ? `@${sourceVersion}` : '') : undefined;
    found.push({
      ecosystem: 'deb',
      name,
      version,
      ...(arch ? { arch } : {}),
      ...(source ? { source } : {}),
      location,
      purl: new PackageURL('deb', os?.id ?? 'debian', name, version, {
        ...(arch ? { arch } : {}),
        ...(os?.versionId ? { distro: `${os.id}-${os.versionId}` } : {}),
        ...(upstream ? { upstream } : {}),
      }).toString(),
    });
  }
  return found;
}
