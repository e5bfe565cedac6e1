// The bench's registry: docker-registry on loopback (started as the tests start theirs), storage
// under bench/.work kept across restarts, so that a figure can empty or restore it between runs.
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { killAndWait, startRegistryProcess } from '../../test/helpers/registry-process.mjs';
import { must } from './exec.mjs';

export class Registry {
  /** `dir` holds config.yml, registry.log and storage/. */
  constructor(dir) {
    this.dir = dir;
    this.storage = path.join(dir, 'storage');
    this.child = null;
    this.port = undefined;
  }

  get host() {
    return `127.0.0.1:${this.port}`;
  }

  /** The running registry's pid, for timed()'s `servers`: its CPU is part of what a push costs. */
  get pid() {
    return this.child?.exitCode === null ? this.child.pid : undefined;
  }

  /** Starts on a new free port, or on the previous one with keepPort (references to it stay valid). */
  async start(keepPort = false) {
    await mkdir(this.dir, { recursive: true });
    // The registry's own defaults otherwise (access log, no blob cache): what the figures measure.
    const { child, host } = await startRegistryProcess({
      dir: this.dir,
      port: keepPort ? this.port : undefined,
      config: (addr) => ({
        version: '0.1',
        log: { level: 'warn' },
        storage: { filesystem: { rootdirectory: this.storage }, delete: { enabled: true } },
        http: { addr },
      }),
    });
    this.child = child;
    this.port = Number(host.slice(host.lastIndexOf(':') + 1));
  }

  async stop() {
    if (this.child) await killAndWait(this.child);
  }

  /** Stops, empties the storage and starts again (on a new port). */
  async fresh() {
    await this.stop();
    await rm(this.storage, { recursive: true, force: true });
    await this.start();
  }

  /** Stops, replaces the storage with a copy of `snapshot` (or empties it) and starts on the same port. */
  async restore(snapshot) {
    await this.stop();
    await rm(this.storage, { recursive: true, force: true });
    if (snapshot) await must('cp', ['-a', snapshot, this.storage]);
    await this.start(true);
  }

  /** Stops and removes the storage: what a figure does when it is done, or failed. */
  async dispose() {
    await this.stop();
    await rm(this.storage, { recursive: true, force: true });
  }
}
