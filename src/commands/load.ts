import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { UserError } from '../failure.js';

/** A container runtime that answered here: `docker` (its daemon's version) or `podman`. */
export interface Runtime {
  name: 'docker' | 'podman';
  version: string;
}

/** How long a runtime may take to say its version: a daemon that does not answer by then is not there. */
const PROBE_MS = 30_000;

/**
 * The runtime to load into: Docker when its daemon answers (`DOCKER_HOST` and the docker context are
 * the CLI's to read), else podman when it is installed; else an error that says neither is there.
 */
export async function findRuntime(): Promise<Runtime> {
  const docker = await probe('docker', ['version', '--format', '{{.Server.Version}}']);
  if (docker.ok) return { name: 'docker', version: docker.out };
  const podman = await probe('podman', ['version', '--format', '{{.Client.Version}}']);
  if (podman.ok) return { name: 'podman', version: podman.out };
  throw new UserError(
    `load: neither Docker nor podman answers here (docker: ${docker.why}; podman: ${podman.why}); start Docker (or set DOCKER_HOST), install podman, or pull into a layout with output instead`,
  );
}

/** Docker before 23.0 cannot decompress zstd layers; podman and later Docker can. */
export function readsZstd(runtime: Runtime): boolean {
  if (runtime.name === 'podman') return true;
  const major = Number(/^(\d+)\./.exec(runtime.version)?.[1]);
  return major >= 23;
}

/**
 * Streams a `docker save` archive into `<runtime> load`. An error of the archive's own (a blob that
 * does not match its digest, a registry that fails) cuts the stream, so the runtime loads nothing,
 * and is the one reported; else a runtime that fails is reported with its last line.
 */
export async function loadInto(runtime: Runtime, archive: Readable): Promise<void> {
  const child = spawn(runtime.name, ['load'], { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4096)));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve(code));
  });
  exited.catch(() => {}); // awaited below; a spawn error must not go unhandled while the archive streams
  let archiveError: unknown;
  await pipeline(archive, child.stdin).catch((err: NodeJS.ErrnoException) => {
    // EPIPE: the runtime stopped reading; its exit code and message say why.
    if (err.code !== 'EPIPE' && err.code !== 'ERR_STREAM_PREMATURE_CLOSE') archiveError = err;
  });
  const code = await exited;
  if (archiveError) throw archiveError;
  if (code !== 0) {
    const last = stderr.trim().split('\n').pop()?.trim() || `exit code ${code}`;
    throw new UserError(`${runtime.name} load failed: ${last}`);
  }
}

/** Runs a probe; `why` says what went wrong in a few words when it did. */
function probe(command: string, args: string[]): Promise<{ ok: boolean; out: string; why: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: PROBE_MS });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.once('error', (e: NodeJS.ErrnoException) =>
      resolve({ ok: false, out: '', why: e.code === 'ENOENT' ? 'not installed' : e.message }),
    );
    child.once('close', (code, signal) => {
      const line = err.trim().split('\n')[0]?.trim();
      if (code === 0 && out.trim()) resolve({ ok: true, out: out.trim(), why: '' });
      else
        resolve({
          ok: false,
          out: '',
          why: signal ? `no answer in ${PROBE_MS / 1000} s` : line || `exit code ${code}`,
        });
    });
  });
}
