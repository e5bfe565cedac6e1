import path from 'node:path';
import picomatch from 'picomatch';
import { VIRTUAL_FS_TYPES, type Mount } from './mountinfo.js';
import { latin1KeyToText } from '../util/paths.js';
import type { SecretFiles } from './secrets.js';

/**
 * What the walk leaves out. Paths are matched as if `root` were `/`: `/proc` means `<root>/proc`.
 * `drop` leaves an entry and everything below it out; `empty` keeps a directory (its mode, owner and
 * mtime, so `/tmp` stays 1777) but none of its contents.
 */
export type Action = 'keep' | 'drop' | 'empty';

export interface Rule {
  action: Exclude<Action, 'keep'>;
  reason: string;
  /** Worth a warning of its own (a credential left out). */
  warn?: boolean;
  /** A credential: its other names (hardlinks) must be left out too. */
  credential?: boolean;
}

/** Directories whose contents are volatile in any running system: kept empty. */
export const VOLATILE_DIRS = ['/proc', '/sys', '/dev', '/run', '/tmp'];

/** Files a container runtime bind-mounts into a sandbox: they describe the host, not the image. */
export const RUNTIME_FILES = ['/etc/hosts', '/etc/hostname', '/etc/resolv.conf'];

export interface FilterOptions {
  /** Absolute path of the tree being captured. */
  root: string;
  mounts: Mount[];
  swapFiles: Buffer[];
  /** Absolute host paths left out entirely (the runner's temp dir, the output directory). */
  hostPathsToDrop: Array<{ path: string; reason: string; warn?: boolean }>;
  /** User globs, matched against `/`-rooted paths. */
  exclude: string[];
  /** User globs that win over any exclusion, default or user. */
  include: string[];
  /** Credential files to leave out (default: none). */
  secrets?: SecretFiles;
  /** `/`-rooted paths the action writes anew into every image: the tree's copy is left out. */
  rewritten?: Array<{ path: string; reason: string }>;
}

export class Filter {
  /** Exact paths (as latin1 strings of their bytes, `/`-rooted) with a default rule. */
  private readonly exact = new Map<string, Rule>();
  private readonly excludeMatchers: Array<{ pattern: string; test: (p: string) => boolean }>;
  private readonly includeTest: ((p: string) => boolean) | null;
  /** Static directory parts of the include globs: the walk must reach them through excluded parents. */
  private readonly includeGlobs: Array<{ base: string; isGlob: boolean }>;
  private readonly secrets?: SecretFiles;

  constructor(opts: FilterOptions) {
    const root = Buffer.from(path.resolve(opts.root));
    const rel = (abs: Buffer): string | null => relativeKey(root, abs);

    for (const dir of VOLATILE_DIRS) this.exact.set(dir, { action: 'empty', reason: 'volatile directory' });
    const mountPoints = new Set<string>();
    for (const m of opts.mounts) {
      const key = rel(m.mountPoint);
      if (key === null || key === '/') continue;
      mountPoints.add(key);
      if (VIRTUAL_FS_TYPES.has(m.fsType)) {
        this.exact.set(key, { action: 'empty', reason: `${m.fsType} mount` });
      }
    }
    for (const { path: key, reason } of opts.rewritten ?? []) this.exact.set(key, { action: 'drop', reason });
    for (const file of RUNTIME_FILES) {
      if (mountPoints.has(file))
        this.exact.set(file, { action: 'drop', reason: 'bind-mounted by the runtime' });
    }
    for (const swap of opts.swapFiles) {
      const key = rel(swap);
      if (key !== null) this.exact.set(key, { action: 'drop', reason: 'swap file' });
    }
    for (const { path: p, reason, warn } of opts.hostPathsToDrop) {
      const key = rel(Buffer.from(path.resolve(p)));
      if (key !== null && key !== '/')
        this.exact.set(key, { action: 'drop', reason, ...(warn ? { warn } : {}) });
    }

    this.secrets = opts.secrets;
    this.excludeMatchers = opts.exclude.map((pattern) => ({
      pattern,
      test: matcher([pattern]),
    }));
    this.includeTest = opts.include.length ? matcher(opts.include) : null;
    this.includeGlobs = opts.include.map((p) => {
      const scan = picomatch.scan(relativePattern(p));
      return { base: scan.base ? '/' + scan.base : '/', isGlob: scan.isGlob };
    });
  }

  /** The rule for one entry, `key` being its `/`-rooted path as a latin1 string of its bytes. */
  classify(key: string): Rule | null {
    const rule = this.exact.get(key);
    if (rule) return rule;
    if (this.excludeMatchers.length) {
      const text = latin1KeyToText(key);
      for (const m of this.excludeMatchers) {
        if (m.test(text)) return { action: 'drop', reason: `exclude: ${m.pattern}` };
      }
    }
    const secret = this.secrets?.match(key);
    return secret ? { action: 'drop', reason: `credentials: ${secret}`, warn: true, credential: true } : null;
  }

  included(key: string): boolean {
    return this.includeTest !== null && this.includeTest(latin1KeyToText(key));
  }

  /**
   * True when some include glob may match below this directory, so it must be walked after all: the
   * directory lies on the way to the glob's fixed part, or inside it when the rest has wildcards.
   */
  leadsToInclude(key: string): boolean {
    const text = latin1KeyToText(key);
    return this.includeGlobs.some(
      ({ base, isGlob }) =>
        base === text ||
        base.startsWith(text === '/' ? '/' : text + '/') ||
        (isGlob && (base === '/' || text.startsWith(base + '/'))),
    );
  }
}

/** `/`-rooted key of `abs` inside `root`, or null when it lies outside. */
function relativeKey(root: Buffer, abs: Buffer): string | null {
  const r = root.toString('latin1').replace(/\/+$/, '');
  const a = abs.toString('latin1');
  if (a === r || (r === '' && a === '/')) return '/';
  if (!a.startsWith(r + '/')) return null;
  return a.slice(r.length);
}

/** Patterns are relative to the root (`/var/cache` and `var/cache` alike), so `**` also matches at the top. */
export function relativePattern(p: string): string {
  return p.trim().replace(/\/+$/, '').replace(/^\/+/, '');
}

/** Matches `/`-rooted paths against root-relative patterns. */
function matcher(patterns: string[]): (text: string) => boolean {
  const test = picomatch(patterns.map(relativePattern), { dot: true });
  return (text) => test(text.slice(1));
}
