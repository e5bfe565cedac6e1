// Container runtimes a user's later job starts the image with: Docker (a private daemon of the test's
// own, overlay2), containerd (likewise, overlayfs snapshotter) and podman (runc, its own storage).
// All pull from the loopback registry.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
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

export interface Containerd {
  /** Any `ctr` command in this daemon's namespace (`image pull --plain-http`, `run`). */
  ctr(args: string[]): Promise<RunResult>;
  /**
   * The unpacked root filesystem of a pulled image, mounted read-only (a view of its snapshot) at a
   * new directory: what a container of it starts from. Unmounted, and the view removed, at cleanup.
   */
  mount(ref: string): Promise<string>;
}

/**
 * containerd with its own config, root, state and socket (and `opt` directory, which defaults to the
 * machine's /opt/containerd), stopped at cleanup. The CRI plugin is off: nothing here is Kubernetes.
 * `env` adds to the daemon's environment (`CONTAINERD_DISABLE_PIGZ=1`: gzip layers read by Go's
 * gzip instead of the machine's unpigz).
 */
export async function startContainerd(opts: { env?: Record<string, string> } = {}): Promise<Containerd> {
  const dir = await tmpDir('containerd');
  const sock = path.join(dir, 'sock');
  const config = path.join(dir, 'config.toml');
  await writeFile(
    config,
    [
      'version = 2',
      `root = ${JSON.stringify(path.join(dir, 'root'))}`,
      `state = ${JSON.stringify(path.join(dir, 'state'))}`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = ${JSON.stringify(sock)}`,
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = ${JSON.stringify(path.join(dir, 'opt'))}`,
      '',
    ].join('\n'),
  );
  const daemon = spawn('containerd', ['--config', config], {
    stdio: 'ignore',
    env: { ...process.env, ...opts.env },
  });
  onCleanup(async () => {
    if (daemon.exitCode === null && daemon.signalCode === null) {
      daemon.kill('SIGTERM');
      await new Promise((resolve) => daemon.once('exit', resolve));
    }
    // An image mount a failed test did not undo would keep the directory from being removed.
    for (const mountPoint of mountsUnder(dir)) await run('umount', ['-l', mountPoint]);
  });
  const inNamespace = (args: string[]) => ['-a', sock, '-n', 'test', ...args];
  const ctr = (args: string[]) => run('ctr', inNamespace(args));
  for (let i = 0; ; i++) {
    if (existsSync(sock) && (await ctr(['version'])).code === 0) break;
    if (i === 150 || daemon.exitCode !== null) throw new Error('containerd did not start');
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  let mounts = 0;
  const mount = async (ref: string) => {
    const target = path.join(dir, `mnt${mounts++}`);
    await mkdir(target);
    await check('ctr', inNamespace(['image', 'mount', ref, target]));
    onCleanup(async () => {
      await ctr(['image', 'unmount', '--rm', target]);
    });
    return target;
  };
  return { ctr, mount };
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
