import path from 'node:path';
import { readApk } from './apk.js';
import { readDpkg } from './dpkg.js';
import type { Ecosystem, Inventory, Package } from './inventory.js';
import { readNpm } from './npm.js';
import { readPython } from './python.js';
import { readToolCache } from './toolcache.js';
import { Tree } from './tree.js';

export interface InventoryOptions {
  /** The PATH the tree's jobs run with, in order; its `…/bin` entries name more npm and Python prefixes. */
  path?: string[];
  /** Where the Actions tool cache is, as the job sees it (`RUNNER_TOOL_CACHE`); default `/opt/hostedtoolcache`. */
  toolCache?: string;
}

/** GitHub's hosted runners keep it here; so do images made from them. */
const DEFAULT_TOOL_CACHE = '/opt/hostedtoolcache';

/**
 * What software the tree at `root` holds, read from package databases and manifests in known places
 * (never by running a package manager, never by walking the whole tree), every path resolved inside
 * `root` as a chroot would (see Tree).
 */
export async function readInventory(
  root: string,
  options: { path?: string[]; toolCache?: string },
): Promise<Inventory> {
  return readTree(new Tree([root]), options);
}

/**
 * The same, read from a merged view of several roots, first root first: an overlay's lower dirs, the
 * tree as it was before the job's changes went into the upper dir.
 */
export async function readMergedInventory(roots: string[], options: InventoryOptions): Promise<Inventory> {
  return readTree(new Tree(roots), options);
}

async function readTree(tree: Tree, options: InventoryOptions): Promise<Inventory> {
  const pathEntries = options.path ?? [];
  const os = await readOsRelease(tree);
  const prefixes = ['usr/local', 'usr', ...binPrefixes(pathEntries)];
  const packages = [
    ...(await readDpkg(tree, os)),
    ...(await readApk(tree, os)),
    ...(await readNpm(tree, prefixes)),
    ...(await readPython(tree, [...prefixes, ...(await optPrefixes(tree))])),
    ...(await readToolCache(tree, options.toolCache || DEFAULT_TOOL_CACHE)),
  ];
  return {
    packages: sortPackages(packages),
    path: pathEntries,
    ...(os ? { os } : {}),
    ...(tree.unreadable ? { unreadable: tree.unreadable } : {}),
  };
}

/** The job's PATH as a list: empty entries (the current directory, to a shell) are no place to look. */
export function splitPath(value: string | undefined): string[] {
  return (value ?? '').split(':').filter(Boolean);
}

/** `/opt/mytool/bin` → `opt/mytool`: a prefix that may hold `lib/node_modules` or `lib/python3*`. */
function binPrefixes(pathEntries: string[]): string[] {
  return pathEntries
    .filter((p) => path.isAbsolute(p) && path.basename(path.normalize(p)) === 'bin')
    .map((p) => path.dirname(path.normalize(p)).replace(/^\/+/, ''));
}

/** `opt/<name>`: self-contained installs (`/opt/python`, `/opt/conda`) with a `lib/python3*` of their own. */
async function optPrefixes(tree: Tree): Promise<string[]> {
  return (await tree.list('opt')).map((name) => `opt/${name}`);
}

const ECOSYSTEM_ORDER: Ecosystem[] = ['deb', 'apk', 'npm', 'pypi', 'toolcache'];

function sortPackages(packages: Package[]): Package[] {
  const key = (p: Package) => ECOSYSTEM_ORDER.indexOf(p.ecosystem);
  const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return packages.sort(
    (a, b) =>
      key(a) - key(b) || cmp(a.name, b.name) || cmp(a.version, b.version) || cmp(a.location, b.location),
  );
}

/** `ID`, `VERSION_ID` and `PRETTY_NAME` of `etc/os-release` (else `usr/lib/os-release`, its usual target). */
async function readOsRelease(tree: Tree): Promise<Inventory['os']> {
  const text =
    (await tree.read('etc/os-release', 64 << 10)) ?? (await tree.read('usr/lib/os-release', 64 << 10));
  if (text === null) return undefined;
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) fields.set(m[1], m[2].replace(/^(["'])(.*)\1$/, '$2'));
  }
  const id = fields.get('ID');
  if (!id) return undefined;
  const versionId = fields.get('VERSION_ID');
  const prettyName = fields.get('PRETTY_NAME');
  return { id, ...(versionId ? { versionId } : {}), ...(prettyName ? { prettyName } : {}) };
}
