// A docker-registry process (Debian's docker-registry = distribution v2.8) on loopback: a free port,
// its config written to a folder, started and waited for until it answers, stopped. Plain JavaScript
// so that the bench (run by node without a build) shares it with the TypeScript test helpers; what the
// config holds (storage, auth, logging) is the caller's.
import { spawn } from 'node:child_process';
import { closeSync, openSync, statSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { get as httpGet } from 'node:http';
import { createServer } from 'node:net';
import path from 'node:path';

/** A TCP port on 127.0.0.1 that was free a moment ago (the kernel picked it). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error('no port'));
        return;
      }
      srv.close(() => resolve(addr.port));
    });
  });
}

// Registries still alive when this process exits would otherwise outlive it.
const live = new Set();
let exitHookInstalled = false;
function track(child) {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
  live.add(child);
  child.once('exit', () => live.delete(child));
}

const fileSize = (file) => {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
};

/**
 * Starts `docker-registry serve DIR/config.yml` on 127.0.0.1:`port`, or on a free port (retried when
 * another process took it first), and waits until /v2/ answers. `config(addr)` gives the
 * configuration for that listen address; its output goes to `logFile` (appended).
 */
export async function startRegistryProcess({ dir, config, port, logFile = path.join(dir, 'registry.log') }) {
  const configPath = path.join(dir, 'config.yml');
  for (let attempt = 1; ; attempt++) {
    const host = `127.0.0.1:${port ?? (await freePort())}`;
    // JSON is valid YAML, and spares us quoting rules.
    await writeFile(configPath, JSON.stringify(config(host), null, 2) + '\n');
    const logStart = fileSize(logFile); // the log may hold earlier runs: look only at this one's
    const logFd = openSync(logFile, 'a');
    let child;
    try {
      // Spawned directly (no shell) so child.pid is the registry itself.
      child = spawn('docker-registry', ['serve', configPath], { stdio: ['ignore', logFd, logFd] });
    } finally {
      closeSync(logFd);
    }
    track(child);
    const failure = await waitReady(child, `http://${host}/v2/`);
    if (!failure) return { child, host };
    child.kill('SIGKILL');
    const log = (await readFile(logFile, 'utf8').catch(() => '')).slice(logStart);
    if (attempt < 3 && port === undefined && /address already in use/.test(log)) continue;
    throw new Error(`registry at http://${host}/v2/ ${failure}; log (${logFile}):\n${log}`);
  }
}

/** Undefined once `url` answers 200 or 401 (auth required), else why it did not within 15 s. */
async function waitReady(child, url) {
  const deadline = Date.now() + 15_000;
  let exited = null;
  child.once('exit', () => (exited ??= 'exited'));
  child.once('error', (e) => (exited ??= `could not start: ${e.message}`)); // e.g. not installed
  while (Date.now() < deadline && !exited) {
    try {
      // node:http, not fetch: fetch refuses the ports on the WHATWG bad-port list (6000, 10080, …).
      const status = await new Promise((resolve, reject) => {
        const req = httpGet(url, { timeout: 1000 }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', reject);
      });
      if (status === 200 || status === 401) return undefined;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return exited ?? 'not ready after 15 s';
}

/** SIGTERM, SIGKILL after 5 s; resolves once the process has exited. */
export async function killAndWait(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}
