import { setTimeout as sleep } from 'node:timers/promises';
import { RegistryError } from './errors.js';

/** How every retry in registry traffic waits: one policy, so the README's waits hold everywhere. */
export interface RetryPolicy {
  /** Tries in all, the first included. @default 5 */
  attempts: number;
  /** First backoff; doubles each try, ±20 % jitter. @default 500 */
  baseDelayMs: number;
  /** Longest single wait, Retry-After included. @default 30000 */
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseDelayMs: 500, maxDelayMs: 30_000 };

/** Statuses that may pass on another try: a timeout, rate limiting, a registry or proxy in trouble. */
export const RETRY_STATUS = new Set([408, 429, 500, 502, 503, 504]);

/** Network failures worth another try; a refused connection or unknown host is not (fail fast). */
export const RETRY_CODES = new Set([
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ESTALL',
  'EAI_AGAIN',
  'ECONNABORTED',
  // undici's names, from a fetch-like transport a test may inject.
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

/** The wait before try `attempt + 1`: 0.5, 1, 2, 4 s … (±20 %), at most `maxDelayMs`. */
export function backoff(attempt: number, policy: RetryPolicy = DEFAULT_RETRY): number {
  const base = Math.min(policy.baseDelayMs * 2 ** (attempt - 1), policy.maxDelayMs);
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

/** No byte moved either way for the stall window while a transfer waited on the network. */
export class StallError extends Error {
  readonly code = 'ESTALL';
  constructor(readonly ms: number) {
    super(`no bytes moved for ${seconds(ms)}`);
  }
}

/** The registry work of this run went past SNAPSHOT_PUSH_TIMEOUT_SECONDS: nothing more is tried. */
export class DeadlineError extends RegistryError {}

export interface Limits {
  /** A transfer with no byte moving for this long is stalled (0: never). */
  stallMs: number;
  /** All registry work of the run must be done this long after it started (0: no limit). */
  deadlineMs: number;
}

export const DEFAULT_LIMITS: Limits = { stallMs: 30_000, deadlineMs: 2 * 60 * 60_000 };

/** The limits, from SNAPSHOT_STALL_SECONDS and SNAPSHOT_PUSH_TIMEOUT_SECONDS when set. */
export function limitsFromEnv(env: NodeJS.ProcessEnv = process.env): Limits {
  const read = (name: string, fallback: number, what: string): number => {
    const raw = env[name]?.trim();
    if (!raw) return fallback;
    if (!/^\d+(\.\d+)?$/.test(raw))
      throw new RegistryError(`${name} must be a number of seconds (0 for ${what}), not "${raw}"`);
    return Math.round(Number(raw) * 1000);
  };
  return {
    stallMs: read('SNAPSHOT_STALL_SECONDS', DEFAULT_LIMITS.stallMs, 'no stall detection'),
    deadlineMs: read('SNAPSHOT_PUSH_TIMEOUT_SECONDS', DEFAULT_LIMITS.deadlineMs, 'no limit'),
  };
}

/**
 * The end of this run's registry work, counted from its first registry connection: past it, every
 * request under way is aborted and none starts, whatever retries are left.
 */
export class Deadline {
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(readonly ms: number) {
    if (ms > 0) {
      this.timer = setTimeout(() => this.controller.abort(this.error()), ms);
      this.timer.unref();
    }
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get passed(): boolean {
    return this.controller.signal.aborted;
  }

  error(what?: string): DeadlineError {
    return new DeadlineError(
      `${what ? `${what}: stopped: ` : ''}the registry work did not finish within ${seconds(this.ms)} (SNAPSHOT_PUSH_TIMEOUT_SECONDS); check the network to the registry, or raise the limit for a slow link`,
    );
  }

  /** Throws the deadline's error once it has passed. */
  check(what?: string): void {
    if (this.passed) throw this.error(what);
  }

  /** Waits `ms` before a retry; throws the deadline's error if it comes first. */
  async pause(ms: number, what?: string): Promise<void> {
    this.check(what);
    try {
      await sleep(ms, undefined, { signal: this.signal });
    } catch {
      throw this.error(what);
    }
  }
}

let current: { deadline: Deadline; limits: Limits } | undefined;

/** This run's limits and deadline, read and started on first use (the first registry connection). */
export function runLimits(): { deadline: Deadline; limits: Limits } {
  if (!current) {
    const limits = limitsFromEnv();
    current = { limits, deadline: new Deadline(limits.deadlineMs) };
  }
  return current;
}

/** Waits the documented backoff before try `attempt + 1` (a layer started over, a blob re-sent). */
export function waitBeforeRetry(attempt: number, what?: string): Promise<void> {
  return runLimits().deadline.pause(backoff(attempt), what);
}

/** `30 s`, `1.5 s`, `10 min`, `2 h`. */
export function seconds(ms: number): string {
  const s = ms / 1000;
  if (s >= 3600 && s % 3600 === 0) return `${s / 3600} h`;
  if (s >= 60 && s % 60 === 0) return `${s / 60} min`;
  return Number.isInteger(s) ? `${s} s` : `${s.toFixed(1)} s`;
}
