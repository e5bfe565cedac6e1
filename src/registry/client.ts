import type { Logger } from '../log.js';
import type { Credentials } from './credentials.js';
import { describeFailure, NOT_A_REGISTRY, RegistryError } from './errors.js';
import { DOCKER_HUB } from './reference.js';
import {
  backoff,
  DEFAULT_RETRY,
  DeadlineError,
  RETRY_CODES,
  RETRY_STATUS,
  runLimits,
  seconds,
  type Deadline,
  type RetryPolicy,
} from './retry.js';
import { httpTransport, type Transport } from './transport.js';

export { DEFAULT_RETRY, type RetryPolicy } from './retry.js';

export interface ClientOptions {
  /** Registry host as in the reference (`docker.io` is reached at registry-1.docker.io). */
  registry: string;
  credentials: Credentials;
  /** Plain HTTP: only for loopback unless the user asked for it. */
  insecure: boolean;
  log: Logger;
  retry?: RetryPolicy;
  /** How requests go out: node:http/https unless a test injects a fetch-like function. */
  transport?: Transport;
}

export interface Request {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Absolute, or a path on the registry (`/v2/...`). */
  url: string | URL;
  /** What this is, for error messages: "upload of layer sha256:…". */
  what: string;
  /** Token scopes the request needs, push scope first. */
  scopes: string[];
  /** Statuses that count as success; anything else is retried when it may pass, else thrown. */
  ok: number[];
  headers?: Record<string, string>;
  /** A Buffer (replayable, so retried) or nothing. */
  body?: Buffer;
  /** A body streamed once (not replayable: retried from its source by the caller, never here). */
  stream?: AsyncIterable<Uint8Array>;
  /** False when a blind resend could do harm (a PUT that appends): the caller checks and retries. */
  retry?: boolean;
  timeoutMs?: number;
}

type Challenge = { scheme: 'basic' } | { scheme: 'bearer'; realm: string; service?: string } | null;

const ERROR_BODY_LIMIT = 64 * 1024;

/**
 * The only HTTP code: talks to one registry, doing its auth dance (Basic, or Bearer tokens cached per
 * scope set until they expire), retrying what may pass with backoff and jitter, honouring Retry-After,
 * and never sending Authorization to another host (redirects, upload locations on storage hosts).
 */
export class RegistryClient {
  readonly base: URL;
  readonly host: string;
  private challenge: Challenge | undefined;
  private readonly tokens = new Map<string, { value: string; expires: number }>();
  private readonly retry: RetryPolicy;
  private readonly warned = new Set<string>();
  private readonly transport: Transport;
  /** The run's end for registry work, and how long a transfer may go without a byte moving. */
  readonly deadline: Deadline;
  readonly stallMs: number;

  constructor(private readonly opts: ClientOptions) {
    const apiHost = opts.registry === DOCKER_HUB ? 'registry-1.docker.io' : opts.registry;
    this.base = new URL(`${opts.insecure ? 'http' : 'https'}://${apiHost}`);
    this.host = this.base.host;
    this.retry = opts.retry ?? DEFAULT_RETRY;
    this.transport = opts.transport ?? httpTransport;
    const { deadline, limits } = runLimits();
    this.deadline = deadline;
    this.stallMs = limits.stallMs;
  }

  /** `GET /v2/`: learns how the registry wants to be authenticated. */
  async ping(): Promise<void> {
    const res = await this.request(
      { method: 'GET', url: '/v2/', what: `connecting to ${this.host}`, scopes: [], ok: [200, 401] },
      false,
    );
    await res.body?.cancel();
    this.challenge = res.status === 200 ? null : parseChallenge(res.headers.get('www-authenticate'));
  }

  /**
   * A request whose answer body is read whole (manifests, configs: small, limited), retried as a
   * whole when the body breaks off midway.
   */
  async requestBytes(req: Request, limit: number): Promise<{ res: Response; bytes: Buffer }> {
    for (let attempt = 1; ; attempt++) {
      const res = await this.request(req);
      try {
        return { res, bytes: await readBody(res, limit, req.what) };
      } catch (err) {
        if (this.deadline.passed) throw this.deadline.error(req.what);
        if (err instanceof RegistryError || attempt >= this.retry.attempts)
          throw err instanceof RegistryError ? err : networkError(req.what, this.host, err);
        await this.pause(this.backoff(attempt), req.what);
      }
    }
  }

  async request(req: Request, authenticate = true): Promise<Response> {
    if (authenticate && this.challenge === undefined) await this.ping();
    let refreshed = false;
    for (let attempt = 1; ; attempt++) {
      this.deadline.check(req.what);
      let res: Response;
      try {
        res = await this.send(req, authenticate);
      } catch (err) {
        if (err instanceof DeadlineError || this.deadline.passed) throw this.deadline.error(req.what);
        if (err instanceof RegistryError) throw err; // already a verdict (the token server said no)
        const code = errorCode(err);
        if (mayRetry(req) && attempt < this.retry.attempts && code && RETRY_CODES.has(code)) {
          this.opts.log.debug(`${req.what}: ${code}, retrying`);
          await this.pause(this.backoff(attempt), req.what);
          continue;
        }
        throw networkError(req.what, this.host, err);
      }
      this.showWarnings(res);
      if (req.ok.includes(res.status)) return res;
      if (res.status === 401 && !refreshed && !req.stream && this.challenge?.scheme === 'bearer') {
        // An expired or too narrow token: drop it and ask once more.
        refreshed = true;
        this.tokens.delete(req.scopes.join(' '));
        await res.body?.cancel();
        continue;
      }
      const wait = retryAfter(res.headers.get('retry-after'), this.retry.maxDelayMs);
      if (mayRetry(req) && RETRY_STATUS.has(res.status) && attempt < this.retry.attempts) {
        const ms = wait ?? this.backoff(attempt);
        this.opts.log.debug(`${req.what}: HTTP ${res.status}, retrying in ${ms} ms`);
        await res.body?.cancel();
        await this.pause(ms, req.what);
        continue;
      }
      const err = await failure(req.what, res, this.opts.credentials);
      err.retryAfterMs = wait;
      throw err;
    }
  }

  /** Waits before a retry; the run's deadline ends the wait (and the push) if it comes first. */
  pause(ms: number, what?: string): Promise<void> {
    return this.deadline.pause(ms, what);
  }

  /** One exchange with the registry; Authorization goes only to its own origin. */
  private async send(req: Request, authenticate: boolean): Promise<Response> {
    return this.exchange(new URL(req.url, this.base), req, async (url) =>
      // Same origin, not just the same host: a redirect from https to http on the same name (default
      // ports make both hosts equal) must not carry the credentials in the clear.
      authenticate && url.origin === this.base.origin ? this.authorization(req.scopes) : undefined,
    );
  }

  /**
   * One exchange, following redirects by hand (a streamed body is spent: its redirect is the caller's
   * failure, to retry from its source), with the Authorization `authorize` gives for each hop.
   */
  private async exchange(
    start: URL,
    req: Pick<Request, 'method' | 'what' | 'headers' | 'body' | 'stream' | 'timeoutMs'>,
    authorize: (url: URL) => Promise<string | undefined>,
  ): Promise<Response> {
    let url = start;
    let method: string = req.method;
    let body: Buffer | undefined = req.body;
    for (let hop = 0; hop < 5; hop++) {
      const headers: Record<string, string> = { 'User-Agent': 'depot-snapshot-action', ...req.headers };
      const auth = await authorize(url);
      if (auth) headers.Authorization = auth;
      const host = url.host;
      const res = await this.transport(url, {
        method,
        headers,
        body: req.stream ?? body,
        signal: AbortSignal.any([AbortSignal.timeout(req.timeoutMs ?? 120_000), this.deadline.signal]),
        stallMs: this.stallMs,
        onStall: () =>
          this.opts.log.warn(
            `${req.what}: stalled: no bytes moved to or from ${host} for ${seconds(this.stallMs)}; dropping the connection to try again`,
          ),
      });
      const location = res.headers.get('location');
      if (req.stream || ![301, 302, 303, 307, 308].includes(res.status) || !location) return res;
      await res.body?.cancel();
      url = new URL(location, url);
      if (res.status === 303) {
        method = 'GET';
        body = undefined;
      }
    }
    throw new RegistryError(`${req.what} failed: too many redirects`);
  }

  private async authorization(scopes: string[]): Promise<string | undefined> {
    const c = this.challenge;
    const { username, password } = this.opts.credentials;
    if (!c) return undefined;
    if (c.scheme === 'basic') {
      return username !== undefined ? basic(username, password ?? '') : undefined;
    }
    const key = scopes.join(' ');
    const cached = this.tokens.get(key);
    if (cached && cached.expires > Date.now()) return `Bearer ${cached.value}`;
    const token = await this.fetchToken(c.realm, c.service, scopes);
    this.tokens.set(key, token);
    return `Bearer ${token.value}`;
  }

  /** Docker token auth (`GET realm?service&scope`), or OAuth2 (`POST realm`) for identity tokens. */
  private async fetchToken(
    realm: string,
    service: string | undefined,
    scopes: string[],
  ): Promise<{ value: string; expires: number }> {
    const creds = this.opts.credentials;
    const url = new URL(realm);
    if (url.protocol === 'http:' && !this.opts.insecure && !isLoopback(url.hostname)) {
      throw new RegistryError(
        `the token server ${url.host} of ${this.host} is plain HTTP; refusing to send credentials there`,
      );
    }
    const what = `getting a token from ${url.host} for ${this.host}`;
    // The token server's own credentials go to its origin only, as the registry's go to the registry's.
    const toRealm = (auth: string | undefined) => async (hop: URL) =>
      hop.origin === url.origin ? auth : undefined;
    let res: Response | undefined;
    try {
      if (creds.identityToken) {
        const form = new URLSearchParams({
          grant_type: 'refresh_token',
          refresh_token: creds.identityToken,
          client_id: 'depot-snapshot-action',
        });
        if (service) form.set('service', service);
        form.set('scope', scopes.join(' '));
        res = await this.exchange(
          url,
          {
            method: 'POST',
            what,
            headers: { 'Content-Type': 'application/x-www-form-urlencoded;charset=UTF-8' },
            body: Buffer.from(form.toString()),
            timeoutMs: 30_000,
          },
          toRealm(undefined),
        );
        if (res.status === 404 || res.status === 405) {
          await res.body?.cancel();
          res = undefined; // no OAuth2 endpoint: fall back to GET
        }
      }
      if (!res) {
        if (service) url.searchParams.set('service', service);
        for (const s of scopes) url.searchParams.append('scope', s);
        const auth =
          creds.username !== undefined && creds.password !== undefined
            ? basic(creds.username, creds.password)
            : undefined;
        res = await this.exchange(url, { method: 'GET', what, timeoutMs: 30_000 }, toRealm(auth));
      }
    } catch (err) {
      if (err instanceof RegistryError) throw err;
      if (this.deadline.passed) throw this.deadline.error(what);
      throw networkError(what, url.host, err);
    }
    if (res.status !== 200) throw await failure(what, res, creds);
    let json: { token?: string; access_token?: string; expires_in?: number };
    try {
      json = (await res.json()) as typeof json;
    } catch {
      throw new RegistryError(`${what} failed: the token server did not answer JSON`);
    }
    const value = json.token ?? json.access_token;
    if (!value) throw new RegistryError(`${what} failed: the answer holds no token`);
    // Renew 10 s early so a token never expires between being read and being used.
    const lifetime = Math.max(Number(json.expires_in) || 60, 20) * 1000;
    return { value, expires: Date.now() + lifetime - 10_000 };
  }

  private backoff(attempt: number): number {
    return backoff(attempt, this.retry);
  }

  /** RFC 7234 `Warning: 299` headers, shown once each. */
  private showWarnings(res: Response): void {
    const w = res.headers.get('warning');
    if (!w) return;
    for (const m of w.matchAll(/299\s+\S+\s+"([^"]*)"/g)) {
      if (!this.warned.has(m[1])) this.opts.log.warn(`registry ${this.host}: ${m[1]}`);
      this.warned.add(m[1]);
    }
  }
}

function mayRetry(req: Request): boolean {
  return !req.stream && req.retry !== false;
}

export function isLoopback(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

function basic(user: string, pass: string): string {
  return 'Basic ' + Buffer.from(`${user}:${pass}`).toString('base64');
}

/** `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`. */
export function parseChallenge(header: string | null): Challenge {
  if (!header) return null;
  const scheme = header.trim().split(/\s+/)[0].toLowerCase();
  if (scheme === 'basic') return { scheme: 'basic' };
  if (scheme !== 'bearer') return null;
  const params: Record<string, string> = {};
  for (const m of header.matchAll(/(\w+)="([^"]*)"/g)) params[m[1].toLowerCase()] = m[2];
  if (!params.realm) return null;
  return { scheme: 'bearer', realm: params.realm, service: params.service };
}

function retryAfter(header: string | null, max: number): number | undefined {
  if (!header) return undefined;
  const secs = Number(header);
  const ms = Number.isFinite(secs) ? secs * 1000 : Date.parse(header) - Date.now();
  return Number.isFinite(ms) ? Math.min(Math.max(ms, 0), max) : undefined;
}

function errorCode(err: unknown): string | undefined {
  const e = err as { code?: string; name?: string; cause?: { code?: string; name?: string } };
  if (e?.name === 'TimeoutError' || e?.cause?.name === 'TimeoutError') return 'ETIMEDOUT';
  return e?.cause?.code ?? e?.code;
}

function networkError(what: string, host: string, err: unknown): RegistryError {
  const code = errorCode(err);
  const why: Record<string, string> = {
    ECONNREFUSED: 'the connection was refused (is the registry running, is the port right?)',
    ENOTFOUND: 'the host name does not resolve',
    ETIMEDOUT: 'it timed out',
    ESTALL: `it stalled: ${(err as Error)?.message}`,
    ECONNRESET: 'the connection was reset',
    DEPTH_ZERO_SELF_SIGNED_CERT: 'its TLS certificate is self-signed (trust it with NODE_EXTRA_CA_CERTS)',
    SELF_SIGNED_CERT_IN_CHAIN: 'its TLS certificate chain is not trusted (NODE_EXTRA_CA_CERTS)',
    UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'its TLS certificate cannot be verified (NODE_EXTRA_CA_CERTS)',
    ERR_TLS_CERT_ALTNAME_INVALID: 'its TLS certificate is for another host name',
    CERT_HAS_EXPIRED: 'its TLS certificate has expired',
    EPROTO: 'TLS failed (is it plain HTTP? then set insecure-registry)',
    ERR_SSL_WRONG_VERSION_NUMBER: 'TLS failed (is it plain HTTP? then set insecure-registry)',
  };
  const message =
    (code && why[code]) ||
    (err as { cause?: Error })?.cause?.message ||
    (err as Error)?.message ||
    String(err);
  return new RegistryError(`${what} failed: cannot reach ${host}: ${message}`);
}

async function failure(what: string, res: Response, creds: Credentials): Promise<RegistryError> {
  let body = '';
  try {
    body = await readLimited(res, ERROR_BODY_LIMIT);
  } catch {
    body = '';
  }
  const err = describeFailure(what, res.status, body);
  if ((res.status === 401 || res.status === 403) && creds.source === 'anonymous') {
    err.message += '; no credentials were found (set username/password or token, or docker login)';
  } else if (res.status === 401 || res.status === 403) {
    err.message += `; credentials from ${creds.source}`;
  }
  return err;
}

/** Reads a whole answer body, refusing one over `limit` bytes (a registry answering a huge body). */
async function readBody(res: Response, limit: number, what: string): Promise<Buffer> {
  const length = Number(res.headers.get('content-length') ?? 0);
  if (length > limit) {
    await res.body?.cancel();
    throw new RegistryError(
      `${what}: the answer is ${length} bytes, over the ${limit} byte limit ${NOT_A_REGISTRY}`,
    );
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body ?? []) {
    size += chunk.length;
    if (size > limit)
      throw new RegistryError(`${what}: the answer is over the ${limit} byte limit ${NOT_A_REGISTRY}`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

async function readLimited(res: Response, limit: number): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  while (size < limit) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.length;
  }
  await reader.cancel().catch(() => {});
  return Buffer.concat(chunks).subarray(0, limit).toString('utf8');
}
