// Running commands: plain (exec, must, sh) and timed with GNU time and the CPU others used meanwhile.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { WORK } from './paths.mjs';

const TIME_BIN = existsSync('/usr/bin/time') ? '/usr/bin/time' : null;
const CLK_TCK = 100;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Runs a command to completion; collects stdout/stderr (they are small for everything run here). */
export function exec(cmd, args, opts = {}) {
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

/** exec(), throwing unless the command exits 0. */
export async function must(cmd, args, opts) {
  const r = await exec(cmd, args, opts);
  if (r.code !== 0)
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim().slice(-2000)}`);
  return r;
}

/** A bash script with `set -euo pipefail`, through must(). */
export const sh = (script, opts) => must('bash', ['-c', `set -euo pipefail; ${script}`], opts);
/** Quotes one word for bash. */
export const q = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;

/** The last error/warning lines of a failed run, for Problems. */
export function failureText(r) {
  const lines = (r.stdout + '\n' + r.stderr)
    .split('\n')
    .filter((l) => /error|fail|warning/i.test(l))
    .slice(-3);
  return `exit ${r.code}${r.signal ? ` (${r.signal})` : ''}: ${lines.join(' | ').slice(0, 300) || r.stderr.trim().slice(-300)}`;
}

/** Environment for our CLI: nothing from an Actions runner, a given HOME for the layer cache. */
export function cleanEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(GITHUB_|RUNNER_|INPUT_|ACTIONS_)/.test(k) || k === 'XDG_CACHE_HOME' || k === 'CI') continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

/** `skopeo copy` of an OCI layout to the loopback registry: arguments for `must` or `timed`. */
export function skopeoCopy(from, to, home) {
  return ['skopeo', ['copy', '-q', '--dest-tls-verify=false', from, to], { env: cleanEnv({ HOME: home }) }];
}

export async function du(dir) {
  const r = await must('du', ['-sb', dir]);
  return Number(r.stdout.split(/\s/)[0]);
}

/** Disk space a folder takes (allocated blocks, not apparent sizes). */
export async function diskUse(dir) {
  const r = await must('du', ['-s', '--block-size=1', dir]);
  return Number(r.stdout.split(/\s/)[0]);
}

/** Paths in a tree, itself included (find | wc -l). */
export async function count(dir) {
  const r = await sh(`find ${q(dir)} | wc -l`);
  return Number(r.stdout.trim());
}

/** CPU seconds used by everything on the machine (user+nice+system+irq+softirq+steal). */
function cpuBusySeconds() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = f;
  return (user + nice + system + irq + softirq + (steal || 0)) / CLK_TCK;
}

/** CPU seconds used so far by the given processes (our registries). */
function cpuSecondsOf(pids) {
  let t = 0;
  for (const pid of pids) {
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

/** Waits (at most `quietWait` s) until the machine is mostly idle, so runs compete less with others. */
async function waitForQuiet(quietWait) {
  const deadline = Date.now() + quietWait * 1000;
  for (;;) {
    const a = cpuBusySeconds();
    await sleep(1000);
    const busy = cpuBusySeconds() - a; // cores busy over the last second
    if (busy < 0.3 || Date.now() >= deadline) return busy;
  }
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

/**
 * One timed run, after waiting up to `quietWait` s for a quiet CPU: wall time from here, user+sys and
 * peak RSS from GNU time (or VmHWM polling when /usr/bin/time is missing), the CPU of `servers` (our
 * own registries: their work is part of what is measured, not noise) and how many cores other
 * processes used meanwhile.
 */
export async function timed(cmd, args, { quietWait, servers = [], ...opts }) {
  await waitForQuiet(quietWait);
  const pids = servers.map((s) => s.pid).filter(Boolean);
  const tf = path.join(WORK, `time-${process.pid}.txt`);
  const busy0 = cpuBusySeconds();
  const server0 = cpuSecondsOf(pids);
  const t0 = process.hrtime.bigint();
  const r = TIME_BIN
    ? await exec(TIME_BIN, ['-f', 'TIME %e %U %S %M', '-o', tf, cmd, ...args], opts)
    : await exec(cmd, args, { ...opts, pollRss: true });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const busy = cpuBusySeconds() - busy0;
  const serverCpu = cpuSecondsOf(pids) - server0;
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
