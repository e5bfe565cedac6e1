// Small process / port / temp-dir helpers shared by the integration tests.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RunOptions {
  cwd?: string;
  /** Full environment for the child (defaults to process.env). */
  env?: NodeJS.ProcessEnv;
  /** Bytes written to the child's stdin (stdin is closed right after; /dev/null when absent). */
  input?: Buffer | string;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
  /** Raw stdout, for output that may hold non-UTF-8 bytes (file names). */
  stdoutBytes: Buffer;
}

/** Runs a command without a shell and collects its output. Never rejects on a non-zero exit. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return spawnCollect(cmd, args, opts).done;
}

/** run(), with the child at hand (to signal it) while its output is collected. */
export function spawnCollect(
  cmd: string,
  args: readonly string[],
  opts: RunOptions = {},
): { child: ChildProcess; done: Promise<RunResult> } {
  const child = spawn(cmd, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  const done = new Promise<RunResult>((resolve, reject) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject); // e.g. ENOENT: command not installed
    child.on('close', (code, signal) => {
      const stdoutBytes = Buffer.concat(out);
      resolve({
        stdout: stdoutBytes.toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        // A signal death has no exit code: report it as 128+n like a shell would, never as 0.
        code: code ?? 128 + (signal ? constants.signals[signal] : 0),
        stdoutBytes,
      });
    });
    if (opts.input !== undefined && child.stdin) {
      child.stdin.on('error', () => {}); // child may exit before reading everything (EPIPE)
      child.stdin.end(opts.input);
    }
  });
  return { child, done };
}

/** Like run(), but throws (with the command line and its stderr) unless the exit code is 0. */
export async function check(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}\n${r.stderr.trim() || r.stdout.trim()}`);
  }
  return r;
}

// Shared with the bench, which runs without a build.
export { freePort } from './registry-process.mjs';

// ---- cleanup registry -------------------------------------------------------------------------

type Cleanup = () => void | Promise<void>;
const cleanups: Cleanup[] = [];

/** Registers work for cleanupAll() (run in reverse order of registration). */
export function onCleanup(fn: Cleanup): void {
  cleanups.push(fn);
}

/** Runs and forgets every registered cleanup; call it from afterAll/afterEach. Errors are collected. */
export async function cleanupAll(): Promise<void> {
  const errors: unknown[] = [];
  while (cleanups.length > 0) {
    const fn = cleanups.pop()!;
    try {
      await fn();
    } catch (e) {
      errors.push(e);
    }
  }
  if (errors.length > 0) throw new AggregateError(errors, 'cleanup failed');
}

/** Creates a fresh directory under os.tmpdir() and registers its removal with cleanupAll(). */
export async function tmpDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix.endsWith('-') ? prefix : `${prefix}-`));
  onCleanup(() => rm(dir, { recursive: true, force: true }));
  return dir;
}
