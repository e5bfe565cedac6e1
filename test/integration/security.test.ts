// Security properties: secrets never shown (debug logs and errors included), Authorization never sent
// to another origin (redirects, upload Locations on a storage host, https → http), plain HTTP only
// for loopback or when asked, symlinks never followed, no tar name that leaves the root, and files the
// action writes never world-writable (the baseline not even world-readable).
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, mkdir, readFile, readdir, readlink, stat, symlink, writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { runAction, type ActionResult } from '../helpers/action.js';
import { inspect, unpack } from '../helpers/image.js';
import { startProxy, type Proxy } from '../helpers/proxy.js';
import { startRegistry, type Registry } from '../helpers/registry.js';
import { JWT, leaks } from '../helpers/secrets.js';
import { cleanupAll, onCleanup, tmpDir } from '../helpers/tools.js';
import { RegistryClient } from '../../src/registry/client.js';
import { connect } from '../../src/registry/connect.js';
import { RegistryError } from '../../src/registry/errors.js';
import { parseReference } from '../../src/registry/reference.js';
import { silentLogger } from '../../src/log.js';

const USER = 'alice';
const PASSWORD = 'Pw-security-5e7a1c90';
const TOKEN = 'Tok-security-82bd44f1';
const DEPOT_TOKEN = 'Depot-security-0a9f3e6d';

let basic: Registry; // htpasswd: alice/PASSWORD, x-token/TOKEN
let token: Registry; // token auth: alice/PASSWORD
let tree: string;

function expectOk(r: ActionResult): void {
  expect(r.errors, r.stdout.slice(-3000) + r.stderr.slice(-2000)).toEqual([]);
  expect(r.code).toBe(0);
}

function expectNothingSecret(r: ActionResult, secrets: string[]): void {
  const all = r.stdout + r.stderr;
  expect(leaks(all, secrets, [USER, 'x-token'])).toEqual([]);
  expect(all).not.toMatch(JWT);
  expect(all).not.toMatch(/authorization:|Basic [A-Za-z0-9+/=]{8,}|Bearer [A-Za-z0-9._-]{8,}/i);
}

beforeAll(async () => {
  [basic, token] = await Promise.all([
    startRegistry({
      auth: 'htpasswd',
      users: [
        { user: USER, pass: PASSWORD },
        { user: 'x-token', pass: TOKEN },
      ],
    }),
    startRegistry({ auth: 'token', users: [{ user: USER, pass: PASSWORD }] }),
  ]);
  tree = await tmpDir('sec-tree');
  await mkdir(path.join(tree, 'data'));
  await writeFile(path.join(tree, 'data', 'blob'), randomBytes(3 * 1024 * 1024));
  await writeFile(path.join(tree, 'data', 'text'), 'text\n'.repeat(100));
});
afterAll(cleanupAll);

describe('secrets are never shown', () => {
  it('token auth through a faulty proxy, with debug logs on: no password, no bearer token', async () => {
    // Every fourth request fails once with a 503, so retries (and their debug lines) happen, always
    // recoverably.
    const failed = new Set<string>();
    let count = 0;
    const proxy = await startProxy({
      target: token.host,
      intercept: (req, res) => {
        const key = `${req.method} ${req.url}`;
        if (count++ % 4 !== 0 || failed.has(key)) return false;
        failed.add(key);
        req.resume();
        res.writeHead(503, { 'Content-Type': 'application/json' });
        res.end('{"errors":[{"code":"UNAVAILABLE","message":"try again"}]}');
        return true;
      },
    });
    const r = await runAction(
      {
        root: tree,
        image: `${proxy.host}/sec/token:v1`,
        username: USER,
        password: PASSWORD,
        'layer-size': '1MiB',
      },
      { env: { RUNNER_DEBUG: '1' } },
    );
    expectOk(r);
    // The debug lines were there to leak: retries were logged.
    expect(r.stdout).toMatch(/::debug::.*retrying/);
    expect(proxy.requests.some((q) => q.authorization)).toBe(true);
    expectNothingSecret(r, [PASSWORD]);
    expect(r.stdout).toContain(`::add-mask::${PASSWORD}`);
  });

  it('the token input, DEPOT_TOKEN and a Docker config: used, never shown', async () => {
    const viaInput = await runAction(
      { root: tree, image: `${basic.host}/sec/input:v1`, token: TOKEN },
      { env: { RUNNER_DEBUG: '1' } },
    );
    expectOk(viaInput);
    expectNothingSecret(viaInput, [TOKEN]);

    const viaEnv = await runAction(
      { root: tree, image: `${basic.host}/sec/env:v1` },
      { env: { RUNNER_DEBUG: '1', DEPOT_TOKEN: TOKEN } },
    );
    expectOk(viaEnv);
    expect(viaEnv.stdout).toContain('credentials: DEPOT_TOKEN');
    expectNothingSecret(viaEnv, [TOKEN]);

    const home = await tmpDir('sec-home');
    await mkdir(path.join(home, '.docker'));
    const auth = Buffer.from(`${USER}:${PASSWORD}`).toString('base64');
    await writeFile(
      path.join(home, '.docker', 'config.json'),
      JSON.stringify({ auths: { [basic.host]: { auth } } }),
    );
    const viaConfig = await runAction(
      { root: tree, image: `${basic.host}/sec/config:v1` },
      { env: { RUNNER_DEBUG: '1', HOME: home } },
    );
    expectOk(viaConfig);
    expectNothingSecret(viaConfig, [PASSWORD]);
  });

  it('failures name the credentials source, never the secret', async () => {
    for (const [inputs, env, secret] of [
      [{ username: USER, password: `${PASSWORD}-wrong` }, {}, `${PASSWORD}-wrong`],
      [{ token: `${TOKEN}-wrong` }, {}, `${TOKEN}-wrong`],
      [{}, { DEPOT_TOKEN: DEPOT_TOKEN }, DEPOT_TOKEN],
    ] as const) {
      for (const reg of [basic, token]) {
        const r = await runAction(
          { root: tree, image: `${reg.host}/sec/denied:v1`, ...inputs },
          { env: { RUNNER_DEBUG: '1', ...env } },
        );
        expect(r.code).toBe(1);
        expect(r.errors).toHaveLength(1);
        expect(r.errors[0]).toMatch(/credentials from (username\/password inputs|token input|DEPOT_TOKEN)/);
        expectNothingSecret(r, [secret]);
      }
    }
  });
});

describe('Authorization stays with the registry', () => {
  /** A storage host on another loopback port: records whether Authorization reached it. */
  let storage: { host: string; seen: Array<{ method: string; url: string; authorization: boolean }> };
  let front: Proxy;
  const good = 'Basic ' + Buffer.from(`${USER}:${PASSWORD}`).toString('base64');

  beforeAll(async () => {
    const seen: Array<{ method: string; url: string; authorization: boolean }> = [];
    const server = http.createServer((req, res) => {
      seen.push({
        method: req.method!,
        url: req.url!,
        authorization: req.headers.authorization !== undefined,
      });
      void serveStorage(req, res).catch((err: Error) => {
        res.writeHead(502);
        res.end(String(err));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    onCleanup(() => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))));
    storage = { host: `127.0.0.1:${(server.address() as { port: number }).port}`, seen };

    // The registry's front: blob reads redirected to storage, upload sessions handed to storage.
    front = await startProxy({
      target: basic.host,
      intercept: (req, res) => {
        if (req.method !== 'GET' || !/\/blobs\/sha256:[0-9a-f]{64}$/.test(req.url!)) return false;
        req.resume();
        const from = `http://${basic.host}${req.url}`;
        res.writeHead(307, { Location: `http://${storage.host}/blob?from=${encodeURIComponent(from)}` });
        res.end();
        return true;
      },
      rewriteLocation: (location, req) => {
        if (!req.url!.includes('/blobs/uploads/') || location.startsWith(`http://${storage.host}/`))
          return location;
        const to = new URL(location, `http://${basic.host}`);
        to.host = basic.host; // straight to the registry from storage
        return `http://${storage.host}/upload?to=${encodeURIComponent(to.href)}`;
      },
    });

    /** Storage does the registry's work with its own credentials, as a signed-URL service would. */
    async function serveStorage(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
      const url = new URL(req.url!, `http://${storage.host}`);
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      let target: URL;
      if (url.pathname === '/blob') {
        target = new URL(url.searchParams.get('from')!);
      } else {
        target = new URL(url.searchParams.get('to')!);
        for (const [k, v] of url.searchParams) if (k !== 'to') target.searchParams.set(k, v);
      }
      const headers: Record<string, string> = { Authorization: good };
      for (const h of ['content-type', 'content-range', 'accept'])
        if (typeof req.headers[h] === 'string') headers[h] = req.headers[h] as string;
      const up = await fetch(target, {
        method: req.method,
        headers,
        body: ['GET', 'HEAD'].includes(req.method!) ? undefined : Buffer.concat(chunks),
        redirect: 'manual',
      });
      const out: Record<string, string> = {};
      for (const h of [
        'content-type',
        'docker-content-digest',
        'range',
        'docker-upload-uuid',
        'content-length',
      ]) {
        const v = up.headers.get(h);
        if (v) out[h] = v;
      }
      const location = up.headers.get('location');
      if (location) {
        const to = new URL(location, target);
        to.host = basic.host;
        out.location = `http://${storage.host}/upload?to=${encodeURIComponent(to.href)}`;
      }
      res.writeHead(up.status, out);
      res.end(Buffer.from(await up.arrayBuffer()));
    }
  });

  it('uploads to a session on another host carry no Authorization', async () => {
    const ref = `${front.host}/sec/redirected:v1`;
    const r = await runAction({ root: tree, image: ref, ...{ username: USER, password: PASSWORD } });
    expectOk(r);
    const uploads = storage.seen.filter((q) => q.url.startsWith('/upload'));
    // Every blob's closing PUT (and any PATCH) went to storage, none with the credentials.
    expect(uploads.filter((q) => q.method === 'PUT').length).toBeGreaterThanOrEqual(Number(r.outputs.layers));
    expect(uploads.filter((q) => q.authorization)).toEqual([]);
    // The registry's own host got the credentials (the test would pass vacuously otherwise).
    expect(front.requests.filter((q) => q.authorization).length).toBeGreaterThan(0);
    expect((await inspect(`${basic.host}/sec/redirected:v1`, { user: USER, pass: PASSWORD })).Digest).toBe(
      r.outputs.digest,
    );
  });

  it('blob reads redirected to another host carry no Authorization', async () => {
    const base = `${front.host}/sec/base:v1`;
    expectOk(await runAction({ root: tree, image: base, username: USER, password: PASSWORD }));
    storage.seen.length = 0;
    // A dry run on that base: its layers are read (GET, redirected) into the layout.
    const home = await tmpDir('sec-home');
    await mkdir(path.join(home, '.docker'));
    const auth = Buffer.from(`${USER}:${PASSWORD}`).toString('base64');
    await writeFile(
      path.join(home, '.docker', 'config.json'),
      JSON.stringify({ auths: { [front.host]: { auth } } }),
    );
    const extra = await tmpDir('sec-extra');
    await writeFile(path.join(extra, 'new.txt'), 'on top of the base\n');
    const output = path.join(await tmpDir('sec-layout'), 'layout');
    const r = await runAction(
      { root: extra, 'dry-run': 'true', output, 'base-image': base, changes: 'full' },
      { env: { HOME: home } },
    );
    expectOk(r);
    const reads = storage.seen.filter((q) => q.url.startsWith('/blob'));
    expect(reads.length).toBeGreaterThan(0);
    expect(reads.filter((q) => q.authorization)).toEqual([]);
    const rootfs = await unpack(output);
    expect(await readFile(path.join(rootfs, 'data', 'text'), 'utf8')).toBe('text\n'.repeat(100));
    expect(await readFile(path.join(rootfs, 'new.txt'), 'utf8')).toBe('on top of the base\n');
  });
});

describe('the client never sends credentials where they do not belong (fetch stubbed)', () => {
  const calls: Array<{ url: string; authorization?: string }> = [];
  afterEach(() => {
    vi.unstubAllGlobals();
    calls.length = 0;
  });

  /** A registry at https://reg.example answering by `routes` (URL → Response), Basic auth. */
  function stub(routes: Record<string, () => Response>): void {
    vi.stubGlobal('fetch', async (input: string | URL, init?: RequestInit) => {
      const url = String(input);
      const headers = (init?.headers ?? {}) as Record<string, string>;
      calls.push({ url, authorization: headers.Authorization });
      const route = routes[url];
      if (!route) throw new TypeError(`unexpected fetch ${url}`);
      return route();
    });
  }
  const client = (registry = 'reg.example') =>
    new RegistryClient({
      registry,
      credentials: { username: USER, password: PASSWORD, source: 'test' },
      insecure: false,
      log: silentLogger,
      retry: { attempts: 1, baseDelayMs: 1, maxDelayMs: 1 },
      // The stubbed fetch, looked up at each call, as the transport.
      transport: (url, init) => fetch(url, init as RequestInit),
    });
  const basicChallenge = () =>
    new Response('{}', { status: 401, headers: { 'WWW-Authenticate': 'Basic realm="r"' } });
  const redirect = (to: string) => () => new Response(null, { status: 307, headers: { Location: to } });
  const blob = '/v2/x/blobs/sha256:' + 'a'.repeat(64);
  const get = (c: RegistryClient) =>
    c.request({ method: 'GET', url: blob, what: 'reading a blob', scopes: ['repository:x:pull'], ok: [200] });

  it('keeps Authorization on a redirect within the registry', async () => {
    stub({
      'https://reg.example/v2/': basicChallenge,
      [`https://reg.example${blob}`]: redirect('/v2/x/elsewhere'),
      'https://reg.example/v2/x/elsewhere': () => new Response('ok'),
    });
    expect((await get(client())).status).toBe(200);
    expect(calls.map((c) => [c.url, !!c.authorization])).toEqual([
      ['https://reg.example/v2/', false],
      [`https://reg.example${blob}`, true],
      ['https://reg.example/v2/x/elsewhere', true],
    ]);
  });

  it('drops it on a redirect to another host, and to the same host over plain HTTP', async () => {
    for (const target of [
      'https://storage.example/blob?sig=1',
      'http://reg.example/v2/x/plain',
      'https://reg.example:8443/x',
    ]) {
      calls.length = 0;
      stub({
        'https://reg.example/v2/': basicChallenge,
        [`https://reg.example${blob}`]: redirect(target),
        [target]: () => new Response('ok'),
      });
      expect((await get(client())).status).toBe(200);
      expect(calls.at(-1)).toEqual({ url: target, authorization: undefined });
      expect(calls.at(-2)!.authorization).toMatch(/^Basic /);
    }
  });

  it('refuses a plain-HTTP token server for a registry reached over TLS', async () => {
    stub({
      'https://reg.example/v2/': () =>
        new Response('{}', {
          status: 401,
          headers: { 'WWW-Authenticate': 'Bearer realm="http://auth.example/token",service="reg"' },
        }),
    });
    const err = await get(client()).catch((e: Error) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as Error).message).toMatch(
      /token server auth\.example .* plain HTTP; refusing to send credentials/,
    );
    expect(calls.some((c) => c.url.includes('auth.example'))).toBe(false);
  });

  it.each([
    ['ghcr.io/o/r', false, 'https:'],
    ['registry.example.com:5000/r', false, 'https:'],
    ['127.0.0.1.nip.io:5000/r', false, 'https:'],
    ['localhost.example.com/r', false, 'https:'],
    ['[::ffff:127.0.0.1]:5000/r', false, 'https:'],
    ['localhost:5000/r', false, 'http:'],
    ['127.0.0.1:5000/r', false, 'http:'],
    ['127.1.2.3:5000/r', false, 'http:'],
    ['[::1]:5000/r', false, 'http:'],
    ['registry.example.com:5000/r', true, 'http:'],
  ])('%s with insecure-registry=%s speaks %s', async (ref, insecure, scheme) => {
    const repo = await connect(parseReference(ref), {
      credentials: {},
      insecureRegistry: insecure,
      access: 'pull',
      log: silentLogger,
    });
    expect(repo.client.base.protocol).toBe(scheme);
  });
});

describe('the walk never follows a symlink', () => {
  it('keeps links to /etc/shadow, /etc and out of the root as links, and reads nothing through them', async () => {
    const root = await tmpDir('sec-links');
    await writeFile(path.join(root, 'real.txt'), 'real\n');
    await symlink('/etc/shadow', path.join(root, 'shadow'));
    await symlink('/etc', path.join(root, 'etc-dir'));
    await symlink('../../../../../../etc/passwd', path.join(root, 'up'));
    await mkdir(path.join(root, 'sub'));
    await symlink('..', path.join(root, 'sub', 'parent'));
    const output = path.join(await tmpDir('sec-layout'), 'layout');
    const r = await runAction({ root, 'dry-run': 'true', output, compression: 'none' });
    expectOk(r);

    const rootfs = await unpack(output);
    for (const [name, target] of [
      ['shadow', '/etc/shadow'],
      ['etc-dir', '/etc'],
      ['up', '../../../../../../etc/passwd'],
      ['sub/parent', '..'],
    ]) {
      expect((await lstat(path.join(rootfs, name))).isSymbolicLink(), name).toBe(true);
      expect(await readlink(path.join(rootfs, name)), name).toBe(target);
    }
    expect((await readdir(rootfs)).sort()).toEqual(['etc-dir', 'real.txt', 'shadow', 'sub', 'up']);

    // The layers (uncompressed) hold none of the files the links point at.
    const blobs = path.join(output, 'blobs', 'sha256');
    const all = Buffer.concat(
      await Promise.all((await readdir(blobs)).map((b) => readFile(path.join(blobs, b)))),
    );
    for (const target of ['/etc/shadow', '/etc/passwd', '/etc/hostname']) {
      if (!existsSync(target)) continue;
      const content = await readFile(target);
      if (content.length >= 16) expect(all.includes(content), target).toBe(false);
    }
  });
});

describe('what the action writes is never world-writable', () => {
  it('layout, metadata file, baseline and layer cache under umask 000', async () => {
    const root = await tmpDir('sec-modes');
    await writeFile(path.join(root, 'f.txt'), 'f\n');
    const work = await tmpDir('sec-out');
    const output = path.join(work, 'layout');
    const metadata = path.join(work, 'meta', 'metadata.json');
    await mkdir(path.dirname(metadata)); // the metadata file's directory is not made for it
    const r = await runAction({ root, 'dry-run': 'true', output, 'metadata-file': metadata }, { umask: 0 });
    expectOk(r);
    const modes = new Map<string, number>();
    const collect = async (p: string): Promise<void> => {
      const st = await lstat(p);
      modes.set(path.relative(work, p), st.mode & 0o7777);
      if (st.isDirectory()) for (const n of await readdir(p)) await collect(path.join(p, n));
    };
    await collect(output);
    await collect(metadata);
    expect(modes.size).toBeGreaterThan(5);
    for (const [p, mode] of modes) expect(mode & 0o022, `${p} ${mode.toString(8)}`).toBe(0);

    // The baseline lists the whole filesystem: its owner's only, and so is a directory made for it.
    const baseline = path.join(work, 'state', 'nested', 'baseline.gz');
    const pre = await runAction(
      { root, 'base-image': 'registry.example.com/base:v1', baseline, 'dry-run': 'true' },
      { pre: true, umask: 0 },
    );
    expectOk(pre);
    expect((await stat(baseline)).mode & 0o777).toBe(0o600);
    expect((await stat(path.dirname(baseline))).mode & 0o777).toBe(0o700);

    // The layer cache a push leaves in HOME.
    const home = await tmpDir('sec-home');
    const pushed = await runAction(
      { root, image: `${basic.host}/sec/modes:v1`, username: USER, password: PASSWORD },
      { umask: 0, env: { HOME: home } },
    );
    expectOk(pushed);
    const cache = path.join(home, '.cache', 'depot-snapshot-action', 'layers.json');
    expect((await stat(cache)).mode & 0o777).toBe(0o600);
    expect((await stat(path.dirname(cache))).mode & 0o077).toBe(0);
  });
});
