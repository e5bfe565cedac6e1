// Bad inputs, broken files and registries that are down, hostile or odd, each run through the bundled
// action as the runner runs it. Every case must end the same way: exit code 1, exactly one `::error::`
// line that says what is wrong and what to do, no stack trace, no secret anywhere in the output, no
// tag moved, and no partial layout (the output directory absent, or unchanged when it was there).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, stat, symlink, truncate, writeFile } from 'node:fs/promises';
import https from 'node:https';
import http from 'node:http';
import path from 'node:path';
import zlib from 'node:zlib';
import { runAction, type ActionOptions, type ActionResult } from '../helpers/action.js';
import { startProxy } from '../helpers/proxy.js';
import { leaks } from '../helpers/secrets.js';
import { startRegistry, type Registry } from '../helpers/registry.js';
import { check, cleanupAll, freePort, onCleanup, run, tmpDir } from '../helpers/tools.js';
import { diffTrees, snapshotTree } from '../helpers/tree.js';

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/** Recognisable secrets: none may show up in any output, in any encoding. */
const PASSWORD = 'Pw-bad-input-7d1f9e2a';
const WRONG_PASSWORD = 'Wrong-pw-bad-input-3b8c';
const TOKEN = 'Tok-bad-input-c4e01f77';
const USER = 'alice';

let open: Registry; // no auth
let basic: Registry; // htpasswd: alice / PASSWORD
let token: Registry; // token auth: alice / PASSWORD
let small: string; // the tree of the images already in the registries
let tree: string; // a different tree: pushing it would move a tag
let bigTree: string; // ~6 MiB of random data: more than the tmpfs holds
let existing: string; // the digest at bad/existing:v1 in open and basic
let closedPort: number;
let tlsHost: string;
const fakes: Record<string, string> = {};
let diskFull: string; // a 2 MiB tmpfs

type Inputs = Record<string, string>;

interface Case {
  name: string;
  /** The inputs; `output` is a fresh path whose parent is checked for leftovers. */
  inputs: (output: string) => Inputs | Promise<Inputs>;
  /** What the one error line must say: what is wrong and what to do. */
  error: RegExp;
  /** A tag the run must leave where it was (or absent): checked with skopeo before and after. */
  tag?: () => { ref: string; creds?: string };
  /** Sets up the output's directory before the run (a pre-existing layout, a file in the way). */
  prepare?: (output: string) => Promise<void>;
  /** The directory `output` lives in (default: a fresh temporary one). */
  outDir?: () => Promise<string>;
  options?: () => Promise<ActionOptions>;
}

const dry = (output: string, extra: Inputs = {}): Inputs => ({
  root: tree,
  'dry-run': 'true',
  output,
  ...extra,
});
const push = (image: string, extra: Inputs = {}): Inputs => ({ root: tree, image, ...extra });
const creds = { username: USER, password: PASSWORD };

/** The digest a tag points at, or "absent". */
async function tagState(ref: string, credentials?: string): Promise<string> {
  const args = [
    'inspect',
    '--tls-verify=false',
    ...(credentials ? ['--creds', credentials] : ['--no-creds']),
  ];
  const r = await run('skopeo', [...args, `docker://${ref}`]);
  if (r.code === 0) return JSON.parse(r.stdout).Digest;
  if (/manifest unknown|not found/i.test(r.stderr)) return 'absent';
  throw new Error(`skopeo inspect ${ref}: ${r.stderr}`);
}

/** An in-process HTTP server on loopback; returns its "127.0.0.1:PORT". */
async function fake(handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  onCleanup(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  return `127.0.0.1:${(server.address() as { port: number }).port}`;
}

/** Answers /v2/ with 200 and everything else with `rest`. */
function registryLike(rest: http.RequestListener): http.RequestListener {
  return (req, res) => {
    req.resume();
    if (req.url === '/v2/') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{}');
      return;
    }
    rest(req, res);
  };
}

const HTML =
  '<!DOCTYPE html>\n<html><head><title>Welcome</title></head>\n<body><h1>It works!</h1></body></html>\n';

async function makeFiles(dir: string, files: Record<string, string | Buffer>): Promise<string> {
  for (const [rel, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
    await writeFile(path.join(dir, rel), content);
  }
  return dir;
}

/** A real baseline of `root` against the base image, recorded by the pre step. */
async function baselineOf(root: string): Promise<string> {
  const file = path.join(await tmpDir('baseline'), 'baseline.gz');
  const pre = await runAction(
    { root, 'base-image': `${open.host}/bad/base:v1`, baseline: file, 'dry-run': 'true' },
    { pre: true },
  );
  expect(pre.errors).toEqual([]);
  return file;
}

beforeAll(async () => {
  [open, basic, token] = await Promise.all([
    startRegistry(),
    startRegistry({ auth: 'htpasswd', users: [{ user: USER, pass: PASSWORD }] }),
    startRegistry({ auth: 'token', users: [{ user: USER, pass: PASSWORD }] }),
  ]);
  small = await makeFiles(await tmpDir('small'), { 'etc/os-release': 'ID=small\n', 'a.txt': 'a\n' });
  tree = await makeFiles(await tmpDir('tree'), {
    'etc/os-release': 'ID=tree\n',
    'data/random.bin': randomBytes(64 * 1024),
    'data/text.txt': 'text\n'.repeat(1000),
  });
  await symlink('data/text.txt', path.join(tree, 'link'));
  bigTree = await makeFiles(await tmpDir('big'), {
    'a.bin': randomBytes(3 * 1024 * 1024),
    'b.bin': randomBytes(3 * 1024 * 1024),
  });

  // The images already there: a tag the failing runs must not move, and a base image.
  const first = await runAction({ root: small, image: `${open.host}/bad/existing:v1` });
  expect(first.errors).toEqual([]);
  existing = first.outputs.digest;
  expect((await runAction({ root: small, image: `${basic.host}/bad/existing:v1`, ...creds })).errors).toEqual(
    [],
  );
  expect((await runAction({ root: small, image: `${open.host}/bad/base:v1` })).errors).toEqual([]);
  // An index that offers only another platform (s390x stands in for "not this machine's").
  const manifest = await fetch(`${open.url}/v2/bad/base/manifests/v1`, { headers: { Accept: OCI_MANIFEST } });
  const bytes = Buffer.from(await manifest.arrayBuffer());
  const descriptor = {
    mediaType: OCI_MANIFEST,
    digest: manifest.headers.get('docker-content-digest'),
    size: bytes.length,
    platform: { os: 'linux', architecture: 's390x' },
  };
  const put = await fetch(`${open.url}/v2/bad/base/manifests/s390x-only`, {
    method: 'PUT',
    headers: { 'Content-Type': OCI_INDEX },
    body: JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [descriptor] }),
  });
  expect(put.status, await put.text()).toBe(201);

  closedPort = await freePort();

  // TLS with a self-signed certificate. Loopback names and addresses get plain HTTP by default, so
  // the server is reached through the IPv4-mapped IPv6 form of 127.0.0.1: the same socket, but a
  // host the scheme decision does not take for loopback, so the client speaks TLS and must reject it.
  const certDir = await tmpDir('tls');
  await check(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem'].concat([
      '-days',
      '2',
      '-subj',
      '/CN=bad-input.test',
    ]),
    { cwd: certDir },
  );
  const tls = https.createServer(
    {
      key: await readFile(path.join(certDir, 'key.pem')),
      cert: await readFile(path.join(certDir, 'cert.pem')),
    },
    (_req, res) => res.end('{}'),
  );
  await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r));
  onCleanup(() => new Promise<void>((r) => tls.close(() => r())));
  tlsHost = `[::ffff:127.0.0.1]:${(tls.address() as { port: number }).port}`;

  // Registries that misbehave.
  fakes.html404 = await fake((req, res) => {
    req.resume();
    res.writeHead(404, { 'Content-Type': 'text/html' });
    res.end(HTML);
  });
  fakes.html200 = await fake((req, res) => {
    req.resume();
    res.writeHead(200, { 'Content-Type': 'text/html' });
    res.end(HTML);
  });
  fakes.garbage = await fake(
    registryLike((_req, res) => {
      res.writeHead(200, { 'Content-Type': OCI_MANIFEST });
      res.end('{"schemaVersion": 2, "layers": [{"digest": ');
    }),
  );
  fakes.hugeChunked = await fake(
    registryLike((_req, res) => {
      res.writeHead(200, { 'Content-Type': OCI_MANIFEST });
      const chunk = Buffer.alloc(1024 * 1024, 0x20);
      let sent = 0;
      const more = () => {
        while (sent < 64 && !res.destroyed) {
          sent++;
          if (!res.write(chunk)) return void res.once('drain', more);
        }
        res.end();
      };
      res.on('error', () => {});
      more();
    }),
  );
  fakes.hugeLength = await fake(
    registryLike((_req, res) => {
      res.writeHead(200, { 'Content-Type': OCI_MANIFEST, 'Content-Length': String(10 * 1024 ** 3) });
      res.on('error', () => {});
      res.write('{');
    }),
  );
  fakes.tokenDown = await fake((req, res) => {
    req.resume();
    res.writeHead(401, {
      'Content-Type': 'application/json',
      'WWW-Authenticate': `Bearer realm="http://127.0.0.1:${closedPort}/token",service="bad-input"`,
    });
    res.end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
  });
  // A real registry behind a proxy that refuses the manifest: what docker-registry 2.8 answers to a
  // manifest over its 4 MiB limit (seen with a 5 MiB one), and what an nginx in front answers instead.
  const refuse = (status: number, contentType: string, body: string) =>
    startProxy({
      target: open.host,
      intercept: (req, res) => {
        if (req.method !== 'PUT' || !req.url?.includes('/manifests/')) return false;
        req.resume();
        res.writeHead(status, { 'Content-Type': contentType });
        res.end(body);
        return true;
      },
    });
  fakes.manifestInvalid = (
    await refuse(
      400,
      'application/json',
      '{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid","detail":"http: request body too large"}]}\n',
    )
  ).host;
  fakes.nginx413 = (
    await refuse(
      413,
      'text/html',
      '<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n<center><h1>413 Request Entity Too Large</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n',
    )
  ).host;

  // Disk full: a 2 MiB tmpfs, unmounted before its directory is removed.
  diskFull = await tmpDir('diskfull');
  await check('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', diskFull]);
  onCleanup(async () => void (await run('umount', [diskFull])));
});
afterAll(cleanupAll);

const existingTag =
  (reg: () => Registry, withCreds = false) =>
  () => ({
    ref: `${reg().host}/bad/existing:v1`,
    creds: withCreds ? `${USER}:${PASSWORD}` : undefined,
  });

const CASES: Case[] = [
  // --- image references
  {
    name: 'uppercase repository',
    inputs: () => push(`${open.host}/Bad/Existing:v1`),
    error: /invalid image reference .*repository names must be lowercase/,
  },
  {
    name: 'bad tag characters',
    inputs: () => push(`${open.host}/bad/existing:v1!beta`),
    error: /tag "v1!beta" must match \[A-Za-z0-9_\]/,
  },
  {
    name: 'empty image, no dry run',
    inputs: () => push(''),
    error: /image is required \(or set dry-run/,
  },
  {
    name: 'digest-only image',
    inputs: () => push(`${open.host}/bad/existing@sha256:${'a'.repeat(64)}`),
    error: /names a digest; name a tag to push to/,
  },
  {
    name: 'host only, no repository',
    inputs: () => push(`${open.host}/`),
    error: /invalid image reference .*repository name is missing/,
  },
  // --- options
  {
    name: 'unknown compression',
    inputs: (o) => dry(o, { compression: 'brotli' }),
    error: /compression must be one of gzip, zstd, none, got "brotli"/,
  },
  {
    name: 'gzip level out of range',
    inputs: (o) => dry(o, { 'compression-level': '12' }),
    error: /compression-level 12 is out of range for gzip \(1-9\)/,
  },
  {
    name: 'level not a number',
    inputs: (o) => dry(o, { 'compression-level': 'fast' }),
    error: /compression-level must be a whole number, got "fast"/,
  },
  {
    name: 'layer-size not a size',
    inputs: (o) => dry(o, { 'layer-size': '12 parsecs' }),
    error: /layer-size must be a size like 512MiB or 1GB, got "12 parsecs"/,
  },
  {
    name: 'layer-size too small',
    inputs: (o) => dry(o, { 'layer-size': '4KiB' }),
    error: /layer-size must be at least 1MiB/,
  },
  {
    name: 'max-age not a duration',
    inputs: () => push(`${open.host}/bad/existing:v1`, { 'max-age': '1 fortnight' }),
    error: /max-age must be a duration like 45m, 1h30m or 5d/,
    tag: existingTag(() => open),
  },
  {
    name: 'concurrency zero',
    inputs: (o) => dry(o, { concurrency: '0' }),
    error: /concurrency must be between 1 and 16, got 0/,
  },
  {
    name: 'concurrency not a number',
    inputs: (o) => dry(o, { concurrency: 'lots' }),
    error: /concurrency must be a whole number, got "lots"/,
  },
  {
    name: 'dry-run not a boolean',
    inputs: (o) => dry(o, { 'dry-run': 'maybe' }),
    error: /dry-run must be true or false, got "maybe"/,
  },
  {
    name: 'unknown mode',
    inputs: (o) => dry(o, { mode: 'snapshoot' }),
    error: /mode must be one of snapshot, promote, pull, lookup, got "snapshoot"/,
  },
  {
    name: 'unknown changes method',
    inputs: (o) => dry(o, { changes: 'diff' }),
    error: /changes must be one of auto, overlay, baseline, full, got "diff"/,
  },
  {
    name: 'key with a line break',
    inputs: (o) => dry(o, { key: 'abc\ndef' }),
    error: /key holds a line break or another control character; give one line/,
  },
  {
    name: 'key too long',
    inputs: (o) => dry(o, { key: 'k'.repeat(1025) }),
    error: /key is 1025 characters long, over 1024; hash what it names instead/,
  },
  {
    name: 'key for a pull',
    inputs: (o) => ({ mode: 'pull', from: `${open.host}/bad/existing:v1`, output: o, key: 'k' }),
    error: /key is for modes snapshot and lookup; pull copies an image as it is/,
  },
  {
    name: 'load in a snapshot',
    inputs: (o) => dry(o, { load: 'true' }),
    error: /load is for mode pull \(it loads the pulled image into Docker or podman\), not snapshot/,
  },
  {
    name: 'load not a boolean',
    inputs: (o) => ({ mode: 'pull', from: `${open.host}/bad/existing:v1`, output: o, load: 'docker' }),
    error: /load must be true or false, got "docker"/,
  },
  {
    name: 'lookup without image',
    inputs: (o) => ({ mode: 'lookup', key: 'k', output: o }),
    error: /lookup needs image: the tag to look at/,
  },
  {
    name: 'lookup with metadata-file',
    inputs: async () => ({
      mode: 'lookup',
      image: `${open.host}/bad/existing:v1`,
      'metadata-file': path.join(await tmpDir('meta'), 'meta.json'),
    }),
    error: /lookup writes nothing, no metadata-file either: read its outputs hit, digest, created and key/,
  },
  {
    name: 'lookup: registry refuses the connection',
    inputs: () => ({ mode: 'lookup', image: `127.0.0.1:${closedPort}/bad/existing:v1`, key: 'k' }),
    error: /cannot reach 127\.0\.0\.1:\d+: the connection was refused/,
  },
  {
    name: 'lookup: wrong password (Basic)',
    inputs: () => ({
      mode: 'lookup',
      image: `${basic.host}/bad/existing:v1`,
      username: USER,
      password: WRONG_PASSWORD,
    }),
    error: /reading bad\/existing:v1 failed: 401 UNAUTHORIZED.*check the credentials/,
    tag: existingTag(() => basic, true),
  },
  // --- root and output
  {
    name: 'root missing',
    inputs: (o) => dry(o, { root: path.join(tree, 'no', 'such') }),
    error: /root .*no\/such cannot be read: ENOENT/,
  },
  {
    name: 'root is a file',
    inputs: (o) => dry(o, { root: path.join(tree, 'data', 'text.txt') }),
    error: /root .*text\.txt is not a directory/,
  },
  {
    // The tests run as root, for whom every mode bit is no obstacle: this case runs the action as
    // nobody, on a root only its owner (root) may list.
    name: 'root unreadable (as nobody)',
    inputs: async (o) => {
      const parent = await tmpDir('unreadable');
      await chmod(parent, 0o755);
      const root = await makeFiles(path.join(parent, 'root'), { 'f.txt': 'f\n' });
      await chmod(root, 0o700);
      return dry(o, { root });
    },
    outDir: worldWritableDir,
    options: asNobody,
    error: /root .*cannot be read: permission denied; .*run the step as root/,
  },
  {
    name: 'a file in the tree unreadable (as nobody)',
    inputs: async (o) => {
      const parent = await tmpDir('unreadable');
      await chmod(parent, 0o755);
      const root = await makeFiles(path.join(parent, 'root'), { 'ok.txt': 'ok\n', 'secret.txt': 's\n' });
      await chmod(root, 0o755);
      await chmod(path.join(root, 'secret.txt'), 0o600);
      return dry(o, { root });
    },
    outDir: worldWritableDir,
    options: asNobody,
    // No sudo for nobody: the walk names what it could not read and what to do.
    error:
      /1 path\(s\) cannot be read as uid \d+ \(\/secret\.txt\): .*needs root; run the step as root or with passwordless sudo/,
  },
  {
    name: 'output is an existing file',
    prepare: (o) => writeFile(o, 'not a directory\n'),
    inputs: (o) => dry(o),
    error: /output .* exists and is not a directory; choose another path/,
  },
  {
    name: 'output is a directory that is not a layout',
    prepare: (o) => makeFiles(o, { 'notes.txt': 'mine\n' }).then(() => undefined),
    inputs: (o) => dry(o),
    error: /output .* is a non-empty directory that is not an OCI image layout; refusing to overwrite it/,
  },
  {
    name: 'a real file named like a whiteout',
    // An OCI layer cannot carry a regular file named `.wh.*`: every unpacker (umoci, containerd,
    // podman) would read it as the deletion of its sibling. Leaving it out would change the snapshot
    // behind the user's back, so the capture stops and says how to go on: rename it or exclude it
    // (umoci and ggcr-based builders refuse such names the same way).
    inputs: async (o) =>
      dry(o, { root: await makeFiles(await tmpDir('wh'), { 'dir/.wh.something': 'real file\n' }) }),
    error: /\.wh\.something is named like a whiteout .* rename it or exclude it/,
  },
  {
    name: 'disk full while the layout is written, over an earlier layout',
    outDir: async () => diskFull,
    prepare: async (o) => {
      const r = await runAction(dry(o, { root: small }));
      expect(r.errors).toEqual([]);
    },
    inputs: (o) => dry(o, { root: bigTree, compression: 'none' }),
    error: /no space left on device .*free some space or choose another output/,
  },
  // --- baselines (changes: baseline)
  {
    name: 'baseline corrupt',
    inputs: async (o) => {
      const file = path.join(await tmpDir('bl'), 'baseline.gz');
      await writeFile(file, randomBytes(4096));
      return dry(o, { 'base-image': `${open.host}/bad/base:v1`, changes: 'baseline', baseline: file });
    },
    error: /baseline\.gz is unreadable or corrupt .*record it again .*changes: full/,
  },
  {
    name: 'baseline truncated',
    inputs: async (o) => {
      const file = await baselineOf(tree);
      const { size } = await stat(file);
      await truncate(file, Math.floor(size / 2));
      return dry(o, { 'base-image': `${open.host}/bad/base:v1`, changes: 'baseline', baseline: file });
    },
    error: /baseline\.gz is (truncated|unreadable or corrupt).*record it again .*changes: full/,
  },
  {
    name: 'baseline foreign (some other gzip file)',
    inputs: async (o) => {
      const file = path.join(await tmpDir('bl'), 'baseline.gz');
      await writeFile(file, zlib.gzipSync('just some text\nnothing to see\n'));
      return dry(o, { 'base-image': `${open.host}/bad/base:v1`, changes: 'baseline', baseline: file });
    },
    error: /baseline\.gz is not a baseline written by this action.*record it again .*changes: full/,
  },
  {
    name: 'baseline of another root',
    inputs: async (o) =>
      dry(o, {
        'base-image': `${open.host}/bad/base:v1`,
        changes: 'baseline',
        baseline: await baselineOf(small),
      }),
    error: /baseline\.gz records .*, not .*; record the baseline of the same root/,
  },
  {
    name: 'baseline missing',
    inputs: async (o) =>
      dry(o, {
        'base-image': `${open.host}/bad/base:v1`,
        changes: 'baseline',
        baseline: path.join(await tmpDir('bl'), 'nothing.gz'),
      }),
    error: /changes: baseline, but no baseline at .*nothing\.gz: did the pre step run\?/,
  },
  {
    name: 'changes: baseline without a base image',
    inputs: (o) => dry(o, { changes: 'baseline' }),
    error: /changes: baseline needs base-image \(or SNAPSHOT_BASE_IMAGE\)/,
  },
  // --- base images
  {
    name: 'base image missing',
    inputs: (o) => dry(o, { 'base-image': `${open.host}/bad/nothere:v1` }),
    error: /base-image .*bad\/nothere:v1: not found \(check the reference, or push it first\)/,
  },
  {
    name: 'base image unauthorized',
    inputs: (o) => dry(o, { 'base-image': `${basic.host}/bad/existing:v1`, ...creds }),
    error: /base-image .*: reading bad\/existing:v1 failed: 401 UNAUTHORIZED.*check the credentials/,
  },
  {
    name: 'base image without this platform',
    inputs: (o) => dry(o, { 'base-image': `${open.host}/bad/base:s390x-only` }),
    error: /base-image .*s390x-only: has no image for linux\/(amd64|arm64) \(it has linux\/s390x\)/,
  },
  {
    name: 'base image reference invalid',
    inputs: (o) => dry(o, { 'base-image': `${open.host}/bad/Base:v1` }),
    error: /base-image: invalid image reference .*lowercase/,
  },
  // --- registries that cannot be reached
  {
    name: 'registry refuses the connection',
    inputs: () => push(`127.0.0.1:${closedPort}/bad/existing:v1`, creds),
    error:
      /cannot reach 127\.0\.0\.1:\d+: the connection was refused \(is the registry running, is the port right\?\)/,
  },
  {
    name: 'unknown host',
    inputs: () => push('registry.bad-input.invalid/bad/existing:v1', creds),
    error: /cannot reach registry\.bad-input\.invalid: the host name does not resolve/,
  },
  {
    name: 'TLS certificate not trusted',
    inputs: () => push(`${tlsHost}/bad/existing:v1`, creds),
    error: /TLS certificate is self-signed \(trust it with NODE_EXTRA_CA_CERTS\)/,
  },
  // --- credentials
  {
    name: 'wrong password (Basic)',
    inputs: () => push(`${basic.host}/bad/existing:v1`, { username: USER, password: WRONG_PASSWORD }),
    error: /401 UNAUTHORIZED.*check the credentials.*credentials from username\/password inputs/,
    tag: existingTag(() => basic, true),
  },
  {
    name: 'no credentials (Basic)',
    inputs: () => push(`${basic.host}/bad/existing:v1`),
    error: /401.*no credentials were found \(set username\/password or token, or docker login\)/,
    tag: existingTag(() => basic, true),
  },
  {
    name: 'wrong token (Basic)',
    inputs: () => push(`${basic.host}/bad/existing:v1`, { token: TOKEN }),
    error: /401 UNAUTHORIZED.*check the credentials.*credentials from token input/,
    tag: existingTag(() => basic, true),
  },
  {
    name: 'wrong password (token server)',
    inputs: () => push(`${token.host}/bad/existing:v1`, { username: USER, password: WRONG_PASSWORD }),
    error: /getting a token from 127\.0\.0\.1:\d+ .*401 UNAUTHORIZED.*check the credentials/,
    tag: () => ({ ref: `${token.host}/bad/existing:v1`, creds: `${USER}:${PASSWORD}` }),
  },
  {
    name: 'token server down',
    inputs: () => push(`${fakes.tokenDown}/bad/existing:v1`, creds),
    error: /getting a token from 127\.0\.0\.1:\d+ .*failed: cannot reach .*connection was refused/,
  },
  // --- registries that answer nonsense
  {
    name: 'an HTML page (404)',
    inputs: () => push(`${fakes.html404}/bad/existing:v1`, creds),
    error: /HTTP 404.*an HTML page \(is this a registry\? check the host name and port\)/,
  },
  {
    name: 'an HTML page (200)',
    inputs: () => push(`${fakes.html200}/bad/existing:v1`, creds),
    error:
      /reading bad\/existing:v1: the registry answered something that is not JSON \(is this a registry\? check the host name and port\)/,
  },
  {
    name: 'garbage JSON',
    inputs: () => push(`${fakes.garbage}/bad/existing:v1`, creds),
    error: /reading bad\/existing:v1: the registry answered something that is not JSON/,
  },
  {
    name: 'a huge body (streamed)',
    inputs: () => push(`${fakes.hugeChunked}/bad/existing:v1`, creds),
    error: /reading bad\/existing:v1: the answer is over the 4194304 byte limit \(is this a registry\?/,
  },
  {
    name: 'a huge body (announced)',
    inputs: () => push(`${fakes.hugeLength}/bad/existing:v1`, creds),
    error: /reading bad\/existing:v1: the answer is 10737418240 bytes, over the 4194304 byte limit/,
  },
  {
    name: 'manifest over the registry limit (MANIFEST_INVALID)',
    inputs: () => push(`${fakes.manifestInvalid}/bad/existing:v1`, creds),
    error:
      /tagging bad\/existing:v1 failed: 400 MANIFEST_INVALID: manifest invalid: http: request body too large .*larger layer-size/,
    tag: existingTag(() => open),
  },
  {
    name: 'manifest too large for a proxy (413 HTML)',
    inputs: () => push(`${fakes.nginx413}/bad/existing:v1`, creds),
    error:
      /tagging bad\/existing:v1 failed: HTTP 413 \(too large for the registry or a proxy in front of it\)/,
    tag: existingTag(() => open),
  },
];

async function worldWritableDir(): Promise<string> {
  const dir = await tmpDir('out');
  await chmod(dir, 0o777);
  return dir;
}

async function asNobody(): Promise<ActionOptions> {
  // The action's own files (outputs, HOME) live in a directory nobody may write: give it its own.
  const home = await tmpDir('nobody-home');
  await chmod(home, 0o777);
  return {
    prefix: ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'],
    env: { HOME: home, RUNNER_TEMP: home },
  };
}

/** The checks every case shares. */
function expectCleanFailure(c: Case, r: ActionResult): void {
  const all = r.stdout + r.stderr;
  const context = `${c.name}\n--- stdout\n${r.stdout.slice(-3000)}\n--- stderr\n${r.stderr.slice(-3000)}`;
  expect(r.code, context).toBe(1);
  expect(r.errors, context).toHaveLength(1);
  expect(r.errors[0], context).toMatch(c.error);
  // One line: the runner shows an escaped newline (%0A) as a line break too.
  expect(r.errors[0]).not.toMatch(/%0A|%0D/);
  // No stack trace, not even in a ::debug:: line (where newlines are escaped), and no error dump.
  expect(all, context).not.toMatch(/(^|\n|%0A)\s*at \S.*(:\d+:\d+\)?|\(native\)|<anonymous>)/);
  expect(all, context).not.toMatch(/(^|\n)\s*(\w+)?Error(: |\s\[)/);
  expect(all, context).not.toMatch(/Uncaught|node:internal/);
  // No secret, in any encoding, except in the runner's own masking command.
  expect(leaks(all, [PASSWORD, WRONG_PASSWORD, TOKEN], [USER, 'x-token']), c.name).toEqual([]);
}

describe('bad inputs fail cleanly', () => {
  it('has at least 30 cases', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(30);
  });

  it.each(CASES.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const outDir = c.outDir ? await c.outDir() : await tmpDir('out');
    const output = path.join(outDir, 'layout');
    await c.prepare?.(output);
    // The directory's own mtime moves when a staging directory comes and goes: only contents count.
    const contents = async () => {
      const snap = await snapshotTree(outDir);
      snap.delete('.');
      return snap;
    };
    const before = await contents();
    const tag = c.tag?.();
    const tagBefore = tag && (await tagState(tag.ref, tag.creds));
    // The tags in open and basic exist: a run that moved them would show.
    if (tag && !tag.ref.startsWith(token.host)) expect(tagBefore).toMatch(/^sha256:/);
    if (tag?.ref.startsWith(open.host)) expect(tagBefore).toBe(existing);

    const inputs = await c.inputs(output);
    const options = c.options ? await c.options() : {};
    const r = await runAction(inputs, { ...options, env: { RUNNER_DEBUG: '1', ...options.env } });
    expectCleanFailure(c, r);

    // No partial layout: the output's directory holds exactly what it held (no staging directory,
    // no half-written layout, an earlier layout untouched).
    expect(diffTrees(before, await contents()), c.name).toEqual([]);
    if (tag) expect(await tagState(tag.ref, tag.creds), `${c.name}: ${tag.ref}`).toBe(tagBefore);
  });
});

describe('inputs refused before anything is written, one line each', () => {
  /** Runs outside Actions (a terminal), as `node dist/index.js --flag value` users see it. */
  const local = (extra: Record<string, string> = {}) => ({ env: { GITHUB_ACTIONS: '', ...extra } });

  async function refused(name: string, inputs: (output: string) => Inputs, error: RegExp) {
    const outDir = await tmpDir('out');
    const output = path.join(outDir, 'layout');
    for (const options of [local(), local({ RUNNER_DEBUG: '1' }), { env: { RUNNER_DEBUG: '1' } }]) {
      const r = await runAction(inputs(output), options);
      expectCleanFailure({ name, inputs, error }, r);
      // A user error has no stack to show: no debug line at all, in either format.
      expect(r.stdout, name).not.toMatch(/::debug::|^debug: /m);
      expect(await readdir(outDir), `${name}: nothing written next to output`).toEqual([]);
    }
  }

  it('metadata-file naming a directory', async () => {
    const dir = await tmpDir('meta');
    await refused(
      'metadata-file directory',
      (o) => dry(o, { 'metadata-file': dir }),
      /metadata-file .* is a directory; name a file/,
    );
  });

  it('metadata-file in a directory that does not exist (not made, like docker buildx)', async () => {
    const missing = path.join(await tmpDir('meta'), 'no', 'such');
    await refused(
      'metadata-file missing parent',
      (o) => dry(o, { 'metadata-file': path.join(missing, 'meta.json') }),
      /directory .*no\/such does not exist; create it first/,
    );
    expect(existsSync(path.dirname(missing))).toBe(false);
  });

  it('exclude: / (the whole root)', async () => {
    await refused(
      'exclude /',
      (o) => dry(o, { exclude: '/var/cache\n/' }),
      /exclude "\/" would leave out the whole root/,
    );
  });

  it('an image reference with port 70000', async () => {
    await refused(
      'port 70000',
      () => push('127.0.0.1:70000/bad/existing:v1'),
      /invalid image reference "127\.0\.0\.1:70000\/bad\/existing:v1": port 70000 is out of range \(1-65535\)/,
    );
  });

  it("an error that is not the user's: its stack only as a debug line, in the logger's format", async () => {
    // GITHUB_OUTPUT naming a missing file: @actions/core throws once the layout is written.
    const output = path.join(await tmpDir('out'), 'layout');
    const broken = { GITHUB_OUTPUT: path.join(await tmpDir('gh'), 'missing', 'output') };
    const quiet = await runAction(dry(output), local(broken));
    expect(quiet.code).toBe(1);
    expect(quiet.errors).toEqual([expect.stringMatching(/^::error::snapshot failed: .*Missing file/)]);
    expect(quiet.stdout + quiet.stderr).not.toMatch(/::debug::|^debug: |\n\s+at /m);
    const debug = await runAction(
      dry(path.join(await tmpDir('out'), 'layout')),
      local({ ...broken, RUNNER_DEBUG: '1' }),
    );
    expect(debug.errors).toEqual(quiet.errors);
    expect(debug.stdout).not.toMatch(/::debug::/);
    expect(debug.stdout).toMatch(/^debug: Error: Missing file.*\n(debug: +at .*\n)+/m);
  });
});
