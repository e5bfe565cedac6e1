import type { ChildProcess } from 'node:child_process';

/** A TCP port on 127.0.0.1 that was free a moment ago (the kernel picked it). */
export function freePort(): Promise<number>;

export interface RegistryProcessOptions {
  /** Folder for config.yml (and the log by default). */
  dir: string;
  /** The registry configuration for the listen address `addr` ("127.0.0.1:PORT"). */
  config: (addr: string) => object;
  /** Listen on this port (fails if it is taken) instead of a free one. */
  port?: number;
  /** Registry stdout+stderr, appended. Default DIR/registry.log. */
  logFile?: string;
}

/** Starts docker-registry and waits until /v2/ answers 200 or 401; killed when this process exits. */
export function startRegistryProcess(
  opts: RegistryProcessOptions,
): Promise<{ child: ChildProcess; host: string }>;

/** SIGTERM, SIGKILL after 5 s; resolves once the process has exited. */
export function killAndWait(child: ChildProcess): Promise<void>;
