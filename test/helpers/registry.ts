// A real registry (Debian's docker-registry = distribution v2.8) on loopback, with optional basic
// (htpasswd) or bearer-token auth. For token auth the token server runs in this process.
import type { ChildProcess } from 'node:child_process';
import {
  X509Certificate,
  createPrivateKey,
  randomBytes,
  randomUUID,
  sign,
  type KeyObject,
} from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { join } from 'node:path';
import { freePort, killAndWait, startRegistryProcess } from './registry-process.mjs';
import { check, onCleanup, tmpDir } from './tools.js';

export type AuthMode = 'none' | 'htpasswd' | 'token';

export interface User {
  user: string;
  pass: string;
}

/** One entry of the `access` claim of a registry token. */
export interface Access {
  type: string; // "repository", "registry"
  name: string; // "foo/bar", "catalog"
  actions: string[]; // "pull", "push", "delete", "*"
}

/** What the in-process token server saw and answered, for assertions about the client's auth flow. */
export interface TokenRequest {
  method: 'GET' | 'POST';
  /** Authenticated user name, or null for an anonymous request. */
  user: string | null;
  service: string;
  /** Raw requested scopes, e.g. "repository:foo:pull,push". */
  scopes: string[];
  status: number;
  granted: Access[];
}

export interface RegistryOptions {
  auth?: AuthMode;
  /** Accounts for htpasswd/token auth. Default: one account tester/secret. */
  users?: User[];
  /**
   * Token mode only: what anonymous token requests get. Default 'none' (a valid token with an empty
   * access list, so the registry refuses everything); 'pull' grants only the pull action of the
   * requested repository scopes.
   */
  anonymous?: 'none' | 'pull';
  /** Listen on this port (fails if it is taken) instead of a free one. */
  port?: number;
}

export interface Registry {
  /** "127.0.0.1:PORT" — what goes in image references. */
  host: string;
  /** "http://127.0.0.1:PORT" */
  url: string;
  auth: AuthMode;
  users: User[];
  /** Registry storage root (blobs and repositories live under docker/registry/v2). */
  dataDir: string;
  /** Temp dir holding config.yml, data, certs, logs; removed by stop(). */
  dir: string;
  /** Registry stdout+stderr (log level warn). */
  logFile: string;
  /** Token mode: the token endpoint ("http://127.0.0.1:PORT/token"). */
  tokenUrl?: string;
  /** Token mode: every request the token server handled, in order. Empty otherwise. */
  requests: TokenRequest[];
  /** Kills the registry (and token server) and removes `dir`. Idempotent. */
  stop(): Promise<void>;
}

export const TOKEN_SERVICE = 'test-registry';
export const TOKEN_ISSUER = 'test-issuer';

export async function startRegistry(opts: RegistryOptions = {}): Promise<Registry> {
  const auth = opts.auth ?? 'none';
  const users = opts.users ?? [{ user: 'tester', pass: 'secret' }];
  const dir = await tmpDir('registry-');
  const dataDir = join(dir, 'data');
  const logFile = join(dir, 'registry.log');
  const requests: TokenRequest[] = [];

  let authConfig: Record<string, unknown> | undefined;
  let tokenServer: Server | undefined;
  let tokenUrl: string | undefined;

  if (auth === 'htpasswd') {
    const lines: string[] = [];
    for (const u of users) {
      // -B bcrypt (the only format distribution accepts), -b password on the command line, -n print.
      lines.push((await check('htpasswd', ['-Bbn', u.user, u.pass])).stdout.trim());
    }
    const path = join(dir, 'htpasswd');
    await writeFile(path, lines.join('\n') + '\n');
    authConfig = { htpasswd: { realm: 'basic-realm', path } };
  } else if (auth === 'token') {
    // Self-signed RSA cert: the key signs tokens, the cert is both x5c and the registry's trust root.
    const subj = ['-days', '30', '-subj', '/CN=t'];
    await check(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem', ...subj],
      {
        cwd: dir,
      },
    );
    const port = await freePort();
    tokenUrl = `http://127.0.0.1:${port}/token`;
    tokenServer = await startTokenServer(dir, port, users, opts.anonymous ?? 'none', requests);
    authConfig = {
      token: {
        realm: tokenUrl,
        service: TOKEN_SERVICE,
        issuer: TOKEN_ISSUER,
        rootcertbundle: join(dir, 'cert.pem'),
      },
    };
  }

  let proc: ChildProcess;
  let host: string;
  try {
    ({ child: proc, host } = await startRegistryProcess({
      dir,
      port: opts.port,
      logFile,
      config: (addr) => ({
        version: '0.1',
        log: { level: 'warn', formatter: 'text', accesslog: { disabled: true } },
        storage: {
          filesystem: { rootdirectory: dataDir },
          delete: { enabled: true },
          maintenance: { uploadpurging: { enabled: false } },
        },
        http: { addr, secret: randomBytes(16).toString('hex') },
        ...(authConfig ? { auth: authConfig } : {}),
      }),
    }));
  } catch (e) {
    tokenServer?.close();
    throw e;
  }

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      await killAndWait(proc);
      if (tokenServer) await new Promise<void>((r) => tokenServer.close(() => r()));
      await rm(dir, { recursive: true, force: true });
    })());
  onCleanup(stop);

  return { host, url: `http://${host}`, auth, users, dataDir, dir, logFile, tokenUrl, requests, stop };
}

// ---- token server -------------------------------------------------------------------------------

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

/** "repository:foo/bar:pull,push" → Access. The name may itself hold ':' (so split on first and last). */
export function parseScope(scope: string): Access | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first < 0 || last === first) return undefined;
  return {
    type: scope.slice(0, first),
    name: scope.slice(first + 1, last),
    actions: scope
      .slice(last + 1)
      .split(',')
      .filter(Boolean),
  };
}

async function startTokenServer(
  dir: string,
  port: number,
  users: User[],
  anonymous: 'none' | 'pull',
  requests: TokenRequest[],
): Promise<Server> {
  const key: KeyObject = createPrivateKey(await readFile(join(dir, 'key.pem')));
  // The registry checks the x5c chain against rootcertbundle (the same self-signed cert).
  const certDer = new X509Certificate(await readFile(join(dir, 'cert.pem'))).raw.toString('base64');

  const issue = (sub: string, access: Access[]) => {
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: 'RS256', typ: 'JWT', x5c: [certDer] };
    const claims = {
      iss: TOKEN_ISSUER,
      sub,
      aud: TOKEN_SERVICE,
      exp: now + 300,
      nbf: now - 10, // tolerate small clock differences
      iat: now,
      jti: randomUUID(),
      access,
    };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    // RS256 = RSASSA-PKCS1-v1_5 with SHA-256, node's default padding for RSA keys.
    const sig = sign('sha256', Buffer.from(input), key);
    return {
      token: `${input}.${b64url(sig)}`,
      expires_in: 300,
      issued_at: new Date(now * 1000).toISOString(),
    };
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', `http://127.0.0.1:${port}`);
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (url.pathname !== '/token' || (req.method !== 'GET' && req.method !== 'POST')) {
      send(404, { errors: [{ code: 'NOT_FOUND' }] });
      return;
    }
    const method = req.method;
    let service = url.searchParams.get('service') ?? '';
    let scopes = url.searchParams.getAll('scope');
    let creds: User | undefined;

    if (method === 'POST') {
      // OAuth2 password grant (docker login style): form body with username/password/scope.
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      service = form.get('service') ?? service;
      scopes = form
        .getAll('scope')
        .flatMap((s) => s.split(' '))
        .filter(Boolean);
      if (form.get('grant_type') !== 'password') {
        requests.push({ method, user: null, service, scopes, status: 400, granted: [] });
        send(400, { error: 'unsupported_grant_type' });
        return;
      }
      creds = { user: form.get('username') ?? '', pass: form.get('password') ?? '' };
    } else {
      const m = /^Basic\s+(.+)$/i.exec(req.headers.authorization ?? '');
      if (m) {
        const plain = Buffer.from(m[1], 'base64').toString('utf8');
        const i = plain.indexOf(':');
        creds = { user: plain.slice(0, i < 0 ? plain.length : i), pass: i < 0 ? '' : plain.slice(i + 1) };
      }
    }

    if (creds && !users.some((u) => u.user === creds.user && u.pass === creds.pass)) {
      requests.push({ method, user: creds.user, service, scopes, status: 401, granted: [] });
      res.setHeader('www-authenticate', 'Basic realm="token"');
      send(401, { errors: [{ code: 'UNAUTHORIZED', message: 'bad credentials' }] });
      return;
    }

    const requested = scopes.map(parseScope).filter((a): a is Access => a !== undefined);
    let granted: Access[];
    if (creds) {
      granted = requested; // authenticated users get exactly what they asked for
    } else if (anonymous === 'pull') {
      granted = requested
        .filter((a) => a.type === 'repository' && a.actions.includes('pull'))
        .map((a) => ({ ...a, actions: ['pull'] }));
    } else {
      granted = [];
    }
    const t = issue(creds?.user ?? '', granted);
    requests.push({ method, user: creds?.user ?? null, service, scopes, status: 200, granted });
    send(200, { ...t, access_token: t.token });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      res.writeHead(500);
      res.end(String(e));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return server;
}

/**
 * Upload sessions still open in `repository`: distribution keeps each under `_uploads/<uuid>` and
 * resumes one only while its `startedat` file is there (a completed session is removed; a cancelled
 * one loses `startedat`, though a late close may leave `data` or hash states behind). Their uuids.
 */
export async function openUploads(registry: Registry, repository: string): Promise<string[]> {
  const dir = join(registry.dataDir, 'docker/registry/v2/repositories', repository, '_uploads');
  const names = await readdir(dir).catch(() => [] as string[]);
  return names.filter((n) => existsSync(join(dir, n, 'startedat')));
}
