import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LayerCache, layerCacheDirs } from '../../src/registry/layer-cache.js';

const PASSWD = [
  'root:x:0:0:root:/root:/bin/bash',
  'runner:x:1001:1001:,,,:/home/runner:/bin/bash',
  'nohome:x:1002:1002::',
].join('\n');

let dir: string;
let file: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'passwd-'));
  file = path.join(dir, 'passwd');
  await writeFile(file, PASSWD + '\n');
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('layerCacheDirs', () => {
  it("holds the directory of this run's cache file and the effective user's passwd home", async () => {
    const env = { HOME: '/sandbox/root' };
    const dirs = layerCacheDirs(env, file);
    expect(dirs).toContain(path.dirname(LayerCache.defaultPath(env)));
    expect(dirs).toContain('/sandbox/root/.cache/depot-snapshot-action');
    expect(dirs).toContain(path.join(os.userInfo().homedir, '.cache', 'depot-snapshot-action'));
  });

  it('follows XDG_CACHE_HOME', async () => {
    const dirs = layerCacheDirs({ HOME: '/h', XDG_CACHE_HOME: '/x/cache' }, file);
    expect(dirs).toContain('/x/cache/depot-snapshot-action');
    expect(dirs).not.toContain('/h/.cache/depot-snapshot-action');
  });

  it("under sudo, also the calling user's, found by SUDO_UID in passwd when sudo reset HOME", async () => {
    const dirs = layerCacheDirs({ HOME: '/root', SUDO_UID: '1001' }, file);
    expect(dirs).toContain('/home/runner/.cache/depot-snapshot-action');
    expect(dirs).toContain('/root/.cache/depot-snapshot-action');
  });

  it('names each directory once, and nothing for an unknown uid or a missing passwd file', async () => {
    const dirs = layerCacheDirs({ HOME: os.userInfo().homedir, SUDO_UID: '4242' }, file);
    expect(new Set(dirs).size).toBe(dirs.length);
    expect(dirs).toEqual([path.join(os.userInfo().homedir, '.cache', 'depot-snapshot-action')]);
    expect(layerCacheDirs({ HOME: '/h', SUDO_UID: '1001' }, '/nonexistent/passwd')).not.toContain(
      '/home/runner/.cache/depot-snapshot-action',
    );
  });
});
