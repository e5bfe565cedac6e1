import { spawn, spawnSync } from 'node:child_process';
import { lchown, lstat, readdir } from 'node:fs/promises';
import path from 'node:path';
import { show, type Logger } from './log.js';
import { reportFailure, UserError } from './failure.js';

/**
 * Capturing `/` needs root: `/root`, `/etc/shadow` and friends are unreadable to anyone else. When the
 * step runs as a normal user with passwordless sudo (GitHub-hosted runners), it runs itself again
 * under sudo; the files it writes are then handed back to the calling user.
 */

/** Set in the environment of the run under sudo, so it never tries again. */
const UNDER_SUDO = 'SNAPSHOT_UNDER_SUDO';

/** Some of the tree cannot be read by this user: the capture would not be faithful. */
export class NeedsRootError extends UserError {
  override readonly rootMayHelp = true;
  constructor(readonly paths: Buffer[]) {
    const first = paths.slice(0, 3).map((p) => '/' + show(p));
    super(
      `${paths.length} path(s) cannot be read as uid ${process.geteuid?.()} (${first.join(', ')}${paths.length > 3 ? ', …' : ''}): capturing this tree needs root; run the step as root or with passwordless sudo`,
    );
  }
}

export const isRoot = (): boolean => (process.geteuid?.() ?? 0) === 0;

/** True in the process that `rerunUnderSudo` started. */
export const underSudo = (): boolean => process.env[UNDER_SUDO] === '1' && isRoot();

/** Whether `sudo` would run us without a password, keeping the environment. */
function sudoWorks(): boolean {
  if (isRoot() || process.env[UNDER_SUDO]) return false;
  const probe = spawnSync('sudo', ['-n', '-E', 'true'], { stdio: 'ignore', timeout: 10_000 });
  return probe.status === 0;
}

/**
 * Runs this same command again under `sudo -E` and resolves with its exit code, or null when sudo
 * cannot run it without a password. PATH is passed explicitly: sudo's secure_path would reset it, and
 * the job's PATH is what the image's Env keeps.
 */
export async function rerunUnderSudo(log: Logger): Promise<number | null> {
  if (!sudoWorks()) return null;
  log.info('some files are readable only by root: running the capture again under sudo');
  const args = ['-n', '-E', '--', 'env', `PATH=${process.env.PATH ?? ''}`, `${UNDER_SUDO}=1`];
  args.push(process.execPath, ...process.execArgv, process.argv[1], ...process.argv.slice(2));
  return new Promise((resolve) => {
    const child = spawn('sudo', args, { stdio: 'inherit' });
    // A cancelled job signals this process; sudo passes it on to the run under it, which cleans up.
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.prependListener(signal, forward);
    child.on('error', () => resolve(null));
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

/**
 * Under sudo, gives what this run wrote (layout, metadata file, baseline, layer cache) to the user who
 * ran sudo, so later steps running as that user can read and replace it.
 */
export async function returnToCaller(paths: string[], log: Logger): Promise<void> {
  if (!underSudo()) return;
  const uid = Number(process.env.SUDO_UID);
  const gid = Number(process.env.SUDO_GID);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) return;
  for (const p of paths.filter(Boolean)) {
    await chownTree(path.resolve(p), uid, gid).catch((err: NodeJS.ErrnoException) =>
      log.warn(`could not give ${p} back to uid ${uid}: ${err.code ?? err.message}`),
    );
  }
}

async function chownTree(p: string, uid: number, gid: number): Promise<void> {
  const st = await lstat(p).catch(() => null);
  if (!st) return;
  await lchown(p, uid, gid);
  if (!st.isDirectory()) return;
  for (const name of await readdir(p)) await chownTree(path.join(p, name), uid, gid);
}

/**
 * How the main and the pre step end on an error: run again under sudo when reading as root may help
 * and sudo allows it (the exit code is then that run's), else one error line and exit 1.
 */
export async function failOrRerunAsRoot(err: unknown, log: Logger): Promise<void> {
  if (err instanceof UserError && err.rootMayHelp && !isRoot()) {
    const code = await rerunUnderSudo(log);
    if (code !== null) {
      process.exitCode = code;
      return;
    }
  }
  reportFailure(err, log.debug);
}
