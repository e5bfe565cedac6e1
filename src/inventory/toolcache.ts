import { PackageURL } from 'packageurl-js';
import type { Package } from './inventory.js';
import type { Tree } from './tree.js';

/**
 * The Actions tool cache (`RUNNER_TOOL_CACHE`, what `actions/setup-node` and friends fill):
 * `<tool>/<version>/<arch>`, counted only once `<arch>.complete` sits beside it, as
 * `@actions/tool-cache` itself decides whether a version is there.
 */
export async function readToolCache(tree: Tree, toolCache: string): Promise<Package[]> {
  const found: Package[] = [];
  const cache = toolCache.replace(/^\/+/, '');
  for (const tool of await tree.list(cache)) {
    for (const version of await tree.list(`${cache}/${tool}`)) {
      const dir = `${cache}/${tool}/${version}`;
      const names = await tree.list(dir);
      for (const arch of names) {
        if (arch.endsWith('.complete') || !names.includes(`${arch}.complete`)) continue;
        found.push({
          ecosystem: 'toolcache',
          name: tool,
          version,
          arch,
          location: `${dir}/${arch}`,
          purl: new PackageURL('generic', undefined, tool, version, { arch }).toString(),
        });
      }
    }
  }
  return found;
}
