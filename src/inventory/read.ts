import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { PackageURL } from 'packageurl-js';
import type { Inventory, Package } from './inventory.js';

/**
 * PLACEHOLDER, to be replaced by the full inventory reader (dpkg, apk, npm, pip, the tool cache):
 * this one reads only dpkg's `var/lib/dpkg/status` and `etc/os-release`, enough for the SBOM's tests.
 */
export async function readInventory(
  root: string,
  options: { path?: string[]; toolCache?: string },
): Promise<Inventory> {
  const os = parseOsRelease(await readText(root, 'etc/os-release', 'usr/lib/os-release'));
  const status = await readText(root, 'var/lib/dpkg/status');
  const packages = status ? dpkgPackages(status, os?.id ?? 'debian') : [];
  packages.sort(
    (a, b) =>
      a.ecosystem.localeCompare(b.ecosystem) ||
      a.name.localeCompare(b.name) ||
      a.version.localeCompare(b.version) ||
      a.location.localeCompare(b.location),
  );
  return { packages, path: options.path ?? [], ...(os ? { os } : {}) };
}

function dpkgPackages(status: string, vendor: string): Package[] {
  const found: Package[] = [];
  for (const stanza of status.split(/\n\s*\n/)) {
    const field = (name: string) => new RegExp(`^${name}: *(.*)$`, 'm').exec(stanza)?.[1]?.trim();
    const name = field('Package');
    const version = field('Version');
    if (!name || !version || !/\binstalled$/.test(field('Status') ?? '')) continue;
    const arch = field('Architecture');
    const source = field('Source')?.split(' ')[0];
    found.push({
      ecosystem: 'deb',
      name,
      version,
      ...(arch ? { arch } : {}),
      ...(source && source !== name ? { source } : {}),
      location: 'var/lib/dpkg/status',
      purl: new PackageURL('deb', vendor, name, version, arch ? { arch } : undefined, undefined).toString(),
    });
  }
  return found;
}

function parseOsRelease(text: string | null): Inventory['os'] {
  if (!text) return undefined;
  const value = (key: string) => new RegExp(`^${key}=("?)(.*)\\1$`, 'm').exec(text)?.[2];
  const id = value('ID');
  if (!id) return undefined;
  const versionId = value('VERSION_ID');
  const prettyName = value('PRETTY_NAME');
  return { id, ...(versionId ? { versionId } : {}), ...(prettyName ? { prettyName } : {}) };
}

async function readText(root: string, ...candidates: string[]): Promise<string | null> {
  for (const rel of candidates) {
    const text = await readFile(path.join(root, rel), 'utf8').catch(() => null);
    if (text !== null) return text;
  }
  return null;
}
