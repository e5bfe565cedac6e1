// The input trees of the side-by-side figures, built once under bench/.work/trees and kept.
import { existsSync } from 'node:fs';
import { mkdir, readdir, realpath, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { debianMirror } from '../../test/helpers/debian-mirror.mjs';
import { composition, compositionText } from './composition.mjs';
import { du, exec, must, q, sh } from './exec.mjs';
import { REPO, WORK, log } from './paths.mjs';

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

/**
 * What the mixed tree copies from the machine, where it exists (source, place in the tree): the
 * documentation, icons and man pages of /usr/share (their .gz and .png already compressed), C headers,
 * Python packages (the system's and the Google Cloud SDK's, whose platform/ adds emulator jars),
 * Node packages (npm's and this repository's node_modules: many small files). Left out to keep the
 * tree near 3 GB: the bulk of /usr/lib (shared libraries, LLVM, the JDK, the SDK's 0.8 GB of Go binaries).
 */
const MIXED_COPIES = [
  ['/usr/share', 'srv/usrshare'],
  ['/usr/include', 'srv/usrinclude'],
  ['/usr/lib/python3', 'srv/usrlib/python3'],
  ['/usr/lib/python3.11', 'srv/usrlib/python3.11'],
  ['/usr/lib/node_modules', 'srv/usrlib/node_modules'],
  ['/usr/lib/google-cloud-sdk/lib', 'srv/usrlib/google-cloud-sdk/lib'],
  ['/usr/lib/google-cloud-sdk/platform', 'srv/usrlib/google-cloud-sdk/platform'],
  [path.join(REPO, 'node_modules'), 'srv/node_modules'],
];

/**
 * Debian packages `apt-get download` puts in the mixed tree's apt cache, in this order, until the
 * tree's compressed share reaches MIXED_COMPRESSED_SHARE: toolchains first (JDK, Go, GCC and cross
 * compilers, LLVM, Rust, GHC, OCaml), then other large packages.
 */
const MIXED_DEBS = [
  'openjdk-17-jdk-headless',
  'openjdk-17-jre-headless',
  'golang-1.19-go',
  'golang-1.19-src',
  'gcc-12',
  'cpp-12',
  'g++-12',
  'gfortran-12',
  'gnat-12',
  'libgcc-12-dev',
  'libstdc++-12-dev',
  'libllvm14',
  'llvm-14',
  'llvm-14-dev',
  'libclang-cpp14',
  'libclang-14-dev',
  'libllvm15',
  'llvm-15',
  'llvm-15-dev',
  'libclang-cpp15',
  'libclang-15-dev',
  'rustc',
  'libstd-rust-1.63',
  'libstd-rust-dev',
  'cargo',
  'ghc',
  'ocaml',
  'python3.11-doc',
  'libpython3.11-dbg',
  'python3-scipy',
  'openjdk-17-source',
  'gcc-arm-none-eabi',
  'libnewlib-arm-none-eabi',
  'gcc-12-aarch64-linux-gnu',
  'gcc-12-arm-linux-gnueabihf',
  'gcc-12-riscv64-linux-gnu',
  'gcc-12-powerpc64le-linux-gnu',
  'gcc-12-s390x-linux-gnu',
  'chromium',
  'pandoc',
  'r-base-core',
  'libreoffice-core-nogui',
];
/** Bytes in already-compressed files over all bytes, as on the real root ("two fifths to a half"). */
export const MIXED_COMPRESSED_SHARE = 0.45;
const MIXED_SHARE_RANGE = [0.4, 0.5];
/** P3 must be measured on at least this many entries. */
export const MIXED_MIN_ENTRIES = 140_000;

/** How a composition of the mixed tree misses what issue 17 asks of it, if it does: a list of reasons. */
export function mixedTreeMisses(c) {
  const misses = [];
  if (c.entries < MIXED_MIN_ENTRIES) misses.push(`${c.entries} entries, fewer than ${MIXED_MIN_ENTRIES}`);
  if (!(c.share >= MIXED_SHARE_RANGE[0] && c.share <= MIXED_SHARE_RANGE[1]))
    misses.push(
      `${(c.share * 100).toFixed(1)} % of its bytes already compressed, not ${MIXED_SHARE_RANGE.map((x) => x * 100).join('–')} %`,
    );
  return misses;
}

/**
 * `apt-get download` of the first MIXED_DEBS whose sizes add up to `needed` bytes, into `dir`.
 * Returns the bytes fetched.
 */
async function downloadDebs(dir, needed) {
  const r = await exec('apt-get', ['download', '--print-uris', ...MIXED_DEBS]);
  // lines: 'URI' FILE SIZE HASH, in apt's order, not ours: pick by our list
  const sizes = new Map();
  for (const line of r.stdout.split('\n')) {
    const m = /^'[^']+' (([^_\s]+)_\S+\.deb) (\d+) /.exec(line);
    if (m) sizes.set(m[2], Number(m[3]));
  }
  const pick = [];
  let bytes = 0;
  for (const name of MIXED_DEBS) {
    if (bytes >= needed) break;
    if (!sizes.has(name)) continue; // not in this mirror
    pick.push(name);
    bytes += sizes.get(name);
  }
  if (bytes < needed)
    log(
      `  warning: all of MIXED_DEBS is ${(bytes / 1e9).toFixed(2)} GB, ${(needed / 1e9).toFixed(2)} GB wanted`,
    );
  log(`  apt-get download of ${pick.length} packages, ${(bytes / 1e9).toFixed(2)} GB…`);
  await mkdir(dir, { recursive: true });
  await must('apt-get', ['download', '-q', ...pick], { cwd: dir });
  return bytes;
}

/**
 * A mixed tree like the real root: the minbase rootfs, toolchains, Python and Node packages copied
 * from the machine (MIXED_COPIES), and `.deb` packages from the Debian mirror in var/cache/apt/archives
 * until MIXED_COMPRESSED_SHARE of its bytes are already compressed. About 3.4 GB and 145k entries
 * on the dev machine.
 */
function treeMixed() {
  return cached(path.join(WORK, 'trees', 'mixed'), async (tmp) => {
    const t0 = Date.now();
    const base = await treeMinbase();
    log('building the mixed tree: the rootfs, copies from /usr and node_modules, .deb packages…');
    await must('cp', ['-a', base, tmp]);
    for (const [from, to] of MIXED_COPIES) {
      if (!existsSync(from)) {
        log(`  ${from} is missing: left out`);
        continue;
      }
      const dest = path.join(tmp, to);
      await mkdir(path.dirname(dest), { recursive: true });
      // node_modules may be a symlink to a shared install: copy what it points to
      await must('cp', ['-a', await realpath(from), dest]);
    }
    const copied = composition(tmp);
    log(`  copied: ${compositionText(copied)}`);
    // compressed + debs = share × (bytes + debs)
    const s = MIXED_COMPRESSED_SHARE;
    const needed = Math.max(0, (s * copied.bytes - copied.compressed) / (1 - s));
    const archives = path.join(tmp, 'var', 'cache', 'apt', 'archives');
    await downloadDebs(archives, needed);
    const c = composition(tmp);
    const debs = (await readdir(archives)).filter((f) => f.endsWith('.deb')).length;
    const note = `${compositionText(c)}; ${debs} .deb in var/cache/apt/archives; built in ${((Date.now() - t0) / 1000).toFixed(0)} s`;
    log(`  mixed tree: ${note}`);
    for (const miss of mixedTreeMisses(c)) log(`  warning: the mixed tree has ${miss}`);
    return note;
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
export const TREES = { mixed: treeMixed, 'rootfs+usrlib': treeRootfsUsrlib, small: treeSmall };

/** GNU tar skips reading file data when its output is /dev/null: pipe through cat to really read. */
export async function warmCache(tree) {
  log(`warming the page cache: tar -cf - ${tree} | cat > /dev/null`);
  await sh(`tar -cf - -C ${q(tree)} . | cat > /dev/null`);
}
