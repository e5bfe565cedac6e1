import { readFileSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { NewLayer } from '../image/build.js';

const CACHE_DIR = 'depot-snapshot-action';

/**
 * Every directory this machine's layer cache may be in for the users at hand, for the walk to leave
 * out: the one this run uses (`XDG_CACHE_HOME` or `HOME`), the effective user's by its passwd home
 * (root's, when sudo or a runner set HOME elsewhere), and under sudo the calling user's (sudo may
 * reset HOME to root's). It lists the registries and repositories this machine pushed to.
 */
export function layerCacheDirs(env: NodeJS.ProcessEnv = process.env, passwd = '/etc/passwd'): string[] {
  const homes = [effectiveHome(), env.SUDO_UID ? homeOf(env.SUDO_UID, passwd) : undefined];
  const dirs = [
    path.dirname(LayerCache.defaultPath(env)),
    ...homes.filter((h): h is string => !!h).map((h) => path.join(h, '.cache', CACHE_DIR)),
  ];
  return [...new Set(dirs.map((d) => path.resolve(d)))];
}

function effectiveHome(): string | undefined {
  try {
    return os.userInfo().homedir; // from passwd, unlike os.homedir(), which prefers HOME
  } catch {
    return undefined; // a uid without a passwd entry
  }
}

/** The home directory of `uid` in the passwd file (`name:x:uid:gid:gecos:home:shell`). */
function homeOf(uid: string, passwd: string): string | undefined {
  try {
    for (const line of readFileSync(passwd, 'utf8').split('\n')) {
      const f = line.split(':');
      if (f.length >= 7 && f[2] === uid && f[5]) return f[5];
    }
  } catch {
    // no passwd file: nothing more to leave out
  }
  return undefined;
}

/** Entries kept; the oldest go first. A few thousand layers cover many images. */
const MAX_ENTRIES = 5000;

interface Cached {
  layer: NewLayer;
  /** `registry/repository` names known to hold the blob: candidates for a cross-repository mount. */
  repositories: string[];
  used: number;
}

/**
 * Layers this machine pushed before, by fingerprint: which digest they had and which repositories
 * hold them. A push to a new repository can then mount an unchanged layer from a sibling repository
 * instead of compressing and sending it again.
 */
export class LayerCache {
  private constructor(
    readonly file: string,
    private readonly entries: Map<string, Cached>,
  ) {}

  static defaultPath(env: NodeJS.ProcessEnv = process.env): string {
    const base = env.XDG_CACHE_HOME || path.join(env.HOME || os.homedir(), '.cache');
    return path.join(base, CACHE_DIR, 'layers.json');
  }

  static async load(file = LayerCache.defaultPath()): Promise<LayerCache> {
    try {
      const data = JSON.parse(await readFile(file, 'utf8')) as Record<string, Cached>;
      return new LayerCache(file, new Map(Object.entries(data)));
    } catch {
      return new LayerCache(file, new Map()); // none yet, or unreadable: start afresh
    }
  }

  get(fingerprint: string): Cached | undefined {
    return this.entries.get(fingerprint);
  }

  remember(fingerprint: string, layer: NewLayer, repository: string): void {
    const old = this.entries.get(fingerprint);
    const repositories =
      old && old.layer.descriptor.digest === layer.descriptor.digest
        ? old.repositories.filter((r) => r !== repository)
        : [];
    this.entries.set(fingerprint, {
      layer,
      repositories: [repository, ...repositories].slice(0, 8),
      used: Date.now(),
    });
  }

  /** Writes the cache atomically; a failure only costs the next push some work. */
  async save(): Promise<void> {
    const kept = [...this.entries].sort((a, b) => b[1].used - a[1].used).slice(0, MAX_ENTRIES);
    try {
      await mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
      const tmp = `${this.file}.${process.pid}.tmp`;
      await writeFile(tmp, JSON.stringify(Object.fromEntries(kept)), { mode: 0o600 });
      await rename(tmp, this.file);
    } catch {
      // best effort
    }
  }
}
