// Container runtimes a user's later job starts the image with: Docker (a private daemon of the test's
// own, overlay2) and podman (runc, its own storage). Both pull from the loopback registry.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { check, onCleanup, run, tmpDir, type RunResult } from './tools.js';

export interface Runtime {
  name: string;
  /** What points the runtime's CLI at this instance (for a process that runs `docker` or `podman`). */
  env: Record<string, string>;
  /** `run --rm IMAGE ARGS…` with no network; the result, whatever the exit code. */
  run(ref: string, args: string[]): Promise<RunResult>;
}

export interface Docker extends Runtime {
  /** Any `docker` command against this daemon (`pull`, a `run` with mounts or the host's network). */
  docker(args: string[]): Promise<RunResult>;
}

/** dockerd with its own data root and socket, stopped at cleanup. */
export async function startDocker(): Promise<Docker> {
  const dir = await tmpDir('docker');
  const sock = path.join(dir, 'sock');
  const daemon = spawn(
    'dockerd',
    [
      '--data-root',
      path.join(dir, 'data'),
      '--exec-root',
      path.join(dir, 'exec'),
      '--pidfile',
      path.join(dir, 'pid'),
      '-H',
      `unix://${sock}`,
      '--insecure-registry',
      '127.0.0.0/8',
      '--iptables=false',
      '--bridge=none',
    ],
    { stdio: 'ignore' },
  );
  onCleanup(async () => {
    if (daemon.exitCode === null && daemon.signalCode === null) {
      daemon.kill('SIGTERM');
      await new Promise((resolve) => daemon.once('exit', resolve));
    }
    // A container run with --network=host leaves the host's network namespace bind-mounted at
    // exec/netns/default after dockerd exits: unmounted, or the directory cannot be removed.
    for (const mountPoint of mountsUnder(dir)) await run('umount', ['-l', mountPoint]);
  });
  const env = { ...process.env, DOCKER_HOST: `unix://${sock}` };
  for (let i = 0; ; i++) {
    if (existsSync(sock) && (await run('docker', ['version'], { env })).code === 0) break;
    if (i === 150 || daemon.exitCode !== null) throw new Error('dockerd did not start');
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return {
    name: 'docker',
    env: { DOCKER_HOST: env.DOCKER_HOST },
    run: (ref, args) => run('docker', ['run', '--rm', '--network=none', ref, ...args], { env }),
    docker: (args) => run('docker', args, { env }),
  };
}

/** Mount points below `dir`, deepest first, from this process's mountinfo (octal escapes decoded). */
function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) =>
      (line.split(' ')[4] ?? '').replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8))),
    )
    .filter((p) => p.startsWith(dir + '/'))
    .sort((a, b) => b.length - a.length);
}

/** podman as this machine runs it (runc, cgroupfs), with storage of its own. */
export async function podman(): Promise<Runtime> {
  const dir = await tmpDir('podman');
  const storage = ['--root', path.join(dir, 'root'), '--runroot', path.join(dir, 'run')];
  onCleanup(async () => {
    await run('podman', [...storage, 'system', 'reset', '--force']);
  });
  await check('podman', [...storage, 'info']);
  // The same storage for a podman run without the flags: the machine's driver, these directories.
  const driver = JSON.parse((await check('podman', [...storage, 'info', '--format', 'json'])).stdout).store
    .graphDriverName as string;
  const conf = path.join(dir, 'storage.conf');
  await writeFile(
    conf,
    `[storage]\ndriver = "${driver}"\ngraphroot = "${path.join(dir, 'root')}"\nrunroot = "${path.join(dir, 'run')}"\n`,
  );
  return {
    name: 'podman',
    env: { CONTAINERS_STORAGE_CONF: conf },
    run: (ref, args) =>
      run('podman', [
        ...storage,
        'run',
        '--rm',
        '--tls-verify=false',
        '--runtime=runc',
        '--network=none',
        '--cgroup-manager=cgroupfs',
        '--ulimit',
        'nofile=1024:1024',
        '--ulimit',
        'nproc=1024:1024',
        ref,
        ...args,
      ]),
  };
}
