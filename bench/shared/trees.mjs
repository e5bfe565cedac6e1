// The input trees of the side-by-side figures, built once under bench/.work/trees and kept.
import { existsSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { debianMirror } from '../../test/helpers/debian-mirror.mjs';
import { du, exec, must, q, sh } from './exec.mjs';
import { WORK, log } from './paths.mjs';

/** Builds `dir` once with `build(tmp)`; a `.ok` file beside it marks it complete. */
export async function cached(dir, build) {
  const ok = `${dir}.ok`;
  if (existsSync(ok) && existsSync(dir)) return dir;
  const tmp = `${dir}.tmp`;
  await rm(tmp, { recursive: true, force: true });
  await rm(dir, { recursive: true, force: true });
  await mkdir(path.dirname(dir), { recursive: true });
  const note = await build(tmp);
  await rename(tmp, dir);
  await writeFile(ok, `${new Date().toISOString()} ${note ?? ''}\n`);
  return dir;
}

/** Debian bookworm minbase (debootstrap, from apt's mirror); a copy of /usr when debootstrap cannot run. */
export function treeMinbase() {
  return cached(path.join(WORK, 'trees', 'minbase'), async (tmp) => {
    log('debootstrap --variant=minbase bookworm (about a minute)…');
    let r;
    try {
      r = await exec('debootstrap', ['--variant=minbase', 'bookworm', tmp, debianMirror()]);
    } catch (err) {
      r = { code: -1, stderr: err.message };
    }
    if (r.code === 0) return 'debootstrap minbase bookworm';
    log(
      `debootstrap failed (${r.code}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}; using a copy of /usr`,
    );
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    await must('cp', ['-a', '/usr', path.join(tmp, 'usr')]);
    return 'copy of /usr (debootstrap failed)';
  });
}

/** (a) minbase rootfs plus a copy of /usr/lib under srv/usrlib: ≥ 1 GB, many small and large files. */
function treeRootfsUsrlib() {
  return cached(path.join(WORK, 'trees', 'rootfs-usrlib'), async (tmp) => {
    const base = await treeMinbase();
    log('copying the rootfs and /usr/lib…');
    await must('cp', ['-a', base, tmp]);
    await must('cp', ['-a', '/usr/lib', path.join(tmp, 'srv', 'usrlib')]);
    const bytes = await du(tmp);
    if (bytes < 1e9) {
      // a small /usr/lib: add /usr/share too
      await must('cp', ['-a', '/usr/share', path.join(tmp, 'srv', 'usrshare')]);
    }
    return `minbase + /usr/lib, ${bytes} bytes`;
  });
}

/** A small tree (a copy of /usr/share/doc and /etc) to check the bench itself quickly. */
function treeSmall() {
  return cached(path.join(WORK, 'trees', 'small'), async (tmp) => {
    await mkdir(path.join(tmp, 'srv'), { recursive: true });
    await must('cp', ['-a', '/usr/share/doc', path.join(tmp, 'srv', 'doc')]);
    await must('cp', ['-a', '/etc', path.join(tmp, 'etc')]);
    return 'smoke-test tree';
  });
}

/** The trees BENCH_TREE names, each a function that builds it if needed and gives its path. */
export const TREES = { 'rootfs+usrlib': treeRootfsUsrlib, small: treeSmall };

/** GNU tar skips reading file data when its output is /dev/null: pipe through cat to really read. */
export async function warmCache(tree) {
  log(`warming the page cache: tar -cf - ${tree} | cat > /dev/null`);
  await sh(`tar -cf - -C ${q(tree)} . | cat > /dev/null`);
}
