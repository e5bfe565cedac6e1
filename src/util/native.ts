import { createRequire } from 'node:module';

/**
 * Loads a native addon the bundle ships in dist/native/: `./native/` from dist/index.js, `../native/`
 * from dist/pre/index.js (resolved against the running file, so it works wherever dist/ is). `fromSource`
 * names where it is found when running from the repository instead (an npm package, or the build's
 * output). Returns null when none loads: the caller falls back or says what is missing.
 */
export function loadNative<T>(file: string, fromSource: string): { binding: T; file: string } | null {
  const require = createRequire(import.meta.url);
  for (const candidate of [`./native/${file}`, `../native/${file}`, fromSource]) {
    try {
      const resolved = require.resolve(candidate);
      return { binding: require(resolved) as T, file: resolved };
    } catch {
      // try the next one
    }
  }
  return null;
}
