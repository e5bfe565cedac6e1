/**
 * What software a tree holds, read from its package databases and manifests (never by running its
 * package managers): the "what setup changed" report compares two of these, and the SBOM lists one.
 */

/** Where a package comes from: a purl type, except `toolcache` (the Actions tool cache). */
export type Ecosystem = 'deb' | 'apk' | 'npm' | 'pypi' | 'toolcache';

export interface Package {
  ecosystem: Ecosystem;
  name: string;
  version: string;
  /** The architecture the package database names (`amd64`, `x86_64`, `x64`), when it names one. */
  arch?: string;
  /** The source package (dpkg's `Source:`, apk's `o:`), when it differs from the name. */
  source?: string;
  /** The file in the tree this was read from, from the root without a leading slash. */
  location: string;
  /** Package URL (https://github.com/package-url/purl-spec), e.g. `pkg:deb/debian/jq@1.6-2.1?arch=amd64`. */
  purl: string;
}

export interface Inventory {
  /** Every package found, sorted by ecosystem, name, version, location. */
  packages: Package[];
  /** The `PATH` the job's steps ended with (what `$GITHUB_PATH` and the image's env add), in order. */
  path: string[];
  /** From `etc/os-release`: `ID` and `VERSION_ID` (`debian`, `12`), when the tree has one. */
  os?: { id: string; versionId?: string; prettyName?: string };
  /** How many package entries were there but could not be read or parsed (left out), when any. */
  unreadable?: number;
}
