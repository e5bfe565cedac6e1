// Self-test of the test helpers: a registry per auth mode, the fixture tree, the tree comparer, and
// the umoci unpack path later tests rely on. Runs as root (see scripts/test-deps.sh).
import { lstat, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  BIG_IDS,
  FIXTURE_DIR_MTIME_NS,
  FIXTURE_MTIME_NS,
  HUGE_IDS,
  SPARSE_SIZE,
  type FixtureInfo,
  makeFixtureTree,
} from './fixture.js';
import { type AuthMode, type Registry, TOKEN_SERVICE, startRegistry } from './registry.js';
import { check, cleanupAll, run, tmpDir } from './tools.js';
import { type TreeSnapshot, diffTrees, pathKey, snapshotTree } from './tree.js';

afterAll(cleanupAll);

/** A one-layer OCI layout made with umoci (tag "t"), shared by the registry tests. */
let layout: string;
beforeAll(async () => {
  const dir = await tmpDir('harness-layout');
  layout = join(dir, 'layout');
  await check('umoci', ['init', '--layout', layout]);
  await check('umoci', ['new', '--image', `${layout}:t`]);
  const src = join(dir, 'src');
  await mkdir(src);
  await check('sh', ['-c', 'echo hello > "$1/hello.txt"', 'sh', src]);
  await check('tar', ['--numeric-owner', '-C', src, '-cf', join(dir, 'layer.tar'), '.']);
  await check('umoci', ['raw', 'add-layer', '--image', `${layout}:t`, join(dir, 'layer.tar')]);
});

const push = (reg: Registry, creds: string | null, repo = 'harness/img') =>
  run('skopeo', [
    'copy',
    '--dest-tls-verify=false',
    ...(creds ? ['--dest-creds', creds] : ['--dest-no-creds']),
    `oci:${layout}:t`,
    `docker://${reg.host}/${repo}:t`,
  ]);

describe.each<AuthMode>(['none', 'htpasswd', 'token'])('registry auth=%s', (auth) => {
  let reg: Registry;
  beforeAll(async () => {
    reg = await startRegistry({ auth });
  });
  afterAll(() => reg.stop());

  test('answers /v2/ and accepts a push from skopeo', async () => {
    const v2 = await fetch(`${reg.url}/v2/`);
    expect(v2.status).toBe(auth === 'none' ? 200 : 401);
    const creds = auth === 'none' ? null : `${reg.users[0].user}:${reg.users[0].pass}`;
    const r = await push(reg, creds);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const inspect = await check('skopeo', [
      'inspect',
      '--tls-verify=false',
      ...(creds ? ['--creds', creds] : ['--no-creds']),
      `docker://${reg.host}/harness/img:t`,
    ]);
    expect(JSON.parse(inspect.stdout).Layers).toHaveLength(1);
  });

  // Plain `if`s (not test.runIf) so inapplicable cases are not reported as skipped.
  if (auth !== 'none')
    test('refuses anonymous and wrong-password pushes', async () => {
      const anon = await push(reg, null, 'harness/anon');
      expect(anon.code).not.toBe(0);
      expect(anon.stderr).toMatch(/unauthorized|denied/);
      const bad = await push(reg, `${reg.users[0].user}:wrong`, 'harness/bad');
      expect(bad.code).not.toBe(0);
    });

  if (auth === 'token')
    test('token server: scopes, grants, password grant, JWT accepted', async () => {
      // The skopeo pushes above went through the token server.
      const authed = reg.requests.filter((r) => r.user === 'tester' && r.status === 200);
      expect(authed.length).toBeGreaterThan(0);
      expect(authed[0].service).toBe(TOKEN_SERVICE);
      expect(authed[0].granted).toContainEqual({
        type: 'repository',
        name: 'harness/img',
        actions: ['pull', 'push'],
      });
      const anon = reg.requests.filter((r) => r.user === null);
      expect(anon.length).toBeGreaterThan(0);
      expect(anon.every((r) => r.granted.length === 0)).toBe(true);
      expect(reg.requests.some((r) => r.status === 401)).toBe(true); // the wrong password

      // OAuth2 password grant (POST form), then use the token on the registry directly.
      const res = await fetch(reg.tokenUrl!, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'password',
          username: 'tester',
          password: 'secret',
          service: TOKEN_SERVICE,
          scope: 'repository:harness/img:pull',
          client_id: 'harness',
        }),
      });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { token: string; access_token: string; expires_in: number };
      expect(body.access_token).toBe(body.token);
      expect(body.expires_in).toBe(300);
      const [header, claims] = body.token
        .split('.')
        .slice(0, 2)
        .map((p) => JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown>);
      expect(header).toMatchObject({ alg: 'RS256', typ: 'JWT' });
      expect(claims).toMatchObject({ iss: 'test-issuer', sub: 'tester', aud: TOKEN_SERVICE });
      const tags = await fetch(`${reg.url}/v2/harness/img/tags/list`, {
        headers: { authorization: `Bearer ${body.token}` },
      });
      expect(tags.status).toBe(200);
      expect(await tags.json()).toEqual({ name: 'harness/img', tags: ['t'] });

      // An anonymous token is valid but grants nothing.
      const anonTok = (await (
        await fetch(`${reg.tokenUrl}?service=${TOKEN_SERVICE}&scope=repository:harness/img:pull`)
      ).json()) as {
        token: string;
      };
      const denied = await fetch(`${reg.url}/v2/harness/img/tags/list`, {
        headers: { authorization: `Bearer ${anonTok.token}` },
      });
      expect(denied.status).toBe(401);
    });
});

test("token registry with anonymous: 'pull' lets anonymous clients pull, not push", async () => {
  const reg = await startRegistry({ auth: 'token', anonymous: 'pull' });
  try {
    expect((await push(reg, 'tester:secret')).code).toBe(0);
    await check('skopeo', [
      'inspect',
      '--tls-verify=false',
      '--no-creds',
      `docker://${reg.host}/harness/img:t`,
    ]);
    expect((await push(reg, null, 'harness/other')).code).not.toBe(0);
  } finally {
    await reg.stop();
  }
});

test('a registry that cannot start rejects with the reason (docker-registry not on PATH)', async () => {
  const path = process.env.PATH;
  process.env.PATH = await tmpDir('harness-empty-path');
  try {
    await expect(startRegistry()).rejects.toThrow(/could not start: spawn docker-registry ENOENT/);
  } finally {
    process.env.PATH = path;
  }
});

describe('fixture tree and comparer', () => {
  let fx: FixtureInfo;
  let snap: TreeSnapshot;
  // Hashing the 1 GiB sparse file costs ~1.5 s per snapshot: the mutation tests leave it out.
  const noSparse = (rel: Buffer) => rel.toString('latin1') === fx.sparse;

  beforeAll(async () => {
    fx = await makeFixtureTree(await tmpDir('harness-fixture'));
    snap = await snapshotTree(fx.root);
  });

  test('holds every special case', async () => {
    const get = (rel: string | Buffer) => {
      const e = snap.get(pathKey(rel));
      if (!e) throw new Error(`fixture lacks ${String(rel)}`);
      return e;
    };
    expect(get(fx.regular.empty)).toMatchObject({ type: 'file', size: 0 });
    expect(get(fx.regular.m3).size).toBe(3 * 1024 * 1024);
    expect(get(fx.regular.mode0000).mode).toBe(0o000);
    expect(get(fx.regular.mode0600).mode).toBe(0o600);
    expect(get(fx.nonUtf8Name).type).toBe('file');
    expect(get(fx.newlineName).xattrs['user.nl']).toBeDefined();
    expect(Buffer.byteLength(fx.longName.split('/').pop()!)).toBe(200);
    expect(Buffer.byteLength(fx.deepPath)).toBeGreaterThan(255);
    expect(get(fx.deepPath).type).toBe('file');
    expect(get(fx.suid).mode).toBe(0o4755);
    expect(get(fx.sgidFile).mode).toBe(0o2755);
    expect(get(fx.sgidDir)).toMatchObject({ type: 'dir', mode: 0o2755 });
    expect(get(fx.stickyDir)).toMatchObject({ type: 'dir', mode: 0o1777 });
    expect(get(fx.bigIds)).toMatchObject(BIG_IDS);
    expect(get(fx.hugeIds)).toMatchObject(HUGE_IDS);
    expect(get(fx.ownedSymlink)).toMatchObject({ type: 'symlink', ...BIG_IDS });
    for (const c of [fx.capNetRaw, fx.capSetuid]) expect(get(c).xattrs['security.capability']).toBeDefined();
    const setuidCap = Buffer.from(get(fx.capSetuid).xattrs['security.capability'], 'base64');
    expect(setuidCap.some((b) => b >= 0x80)).toBe(true);
    const xf = get(fx.xattrFile).xattrs;
    expect(Buffer.from(xf['user.text'], 'base64').toString()).toBe('hello world');
    expect(Buffer.from(xf['user.bin'], 'base64')).toEqual(fx.xattrBinValue);
    expect(get(fx.xattrDir).xattrs['user.dir']).toBeDefined();
    expect(get(fx.fifo).type).toBe('fifo');
    expect(get(fx.charDevice)).toMatchObject({ type: 'char', rdev: '1:3' });
    expect(get(fx.blockDevice)).toMatchObject({ type: 'block', rdev: '7:200' });
    expect(get(fx.socket).type).toBe('socket');
    expect(get(fx.symlinks.absolute).linkTarget).toBe(Buffer.from('/etc/passwd').toString('hex'));
    expect(get(fx.symlinks.relative).linkTarget).toBe(Buffer.from('../x').toString('hex'));
    expect(get(fx.symlinks.dangling).type).toBe('symlink');
    expect(get(fx.symlinks.nonUtf8Target).linkTarget).toBe(fx.nonUtf8LinkTarget.toString('hex'));
    const group = get(fx.hardlinks[0]).hardlinkGroup;
    expect(JSON.parse(group!)).toEqual([...fx.hardlinks].sort());
    for (const h of fx.hardlinks) expect(get(h).hardlinkGroup).toBe(group);
    // Sparse: 1 GiB apparent, well under 1 MiB allocated.
    expect(get(fx.sparse).size).toBe(SPARSE_SIZE);
    expect((await lstat(join(fx.root, fx.sparse))).blocks * 512).toBeLessThan(1 << 20);
    // Nanosecond mtimes on files, symlinks and directories (the root included).
    expect(get(fx.regular.k100).mtimeNs).toBe(FIXTURE_MTIME_NS);
    expect(get(fx.symlinks.absolute).mtimeNs).toBe(FIXTURE_MTIME_NS);
    expect(get('.').mtimeNs).toBe(FIXTURE_DIR_MTIME_NS);
    expect(get('names').mtimeNs).toBe(FIXTURE_DIR_MTIME_NS);
  });

  test('same tree twice compares equal', async () => {
    expect(diffTrees(snap, await snapshotTree(fx.root))).toEqual([]);
  });

  test('one changed mode, xattr, mtime or removal is exactly one difference', async () => {
    let before = await snapshotTree(fx.root, { ignore: noSparse });
    const step = async (cmd: string, args: string[], opts: { ignoreDirMtime?: boolean } = {}) => {
      await check(cmd, args, { cwd: fx.root });
      const after = await snapshotTree(fx.root, { ignore: noSparse });
      const d = diffTrees(before, after, opts);
      before = after;
      return d;
    };
    expect(await step('chmod', ['0644', fx.regular.mode0600])).toEqual(['files/mode0600: mode 0600 != 0644']);
    expect(await step('setfattr', ['-n', 'user.text', '-v', 'changed', fx.xattrFile])).toEqual([
      'xattrs/file: xattr user.text 0saGVsbG8gd29ybGQ= != 0sY2hhbmdlZA==',
    ]);
    expect(await step('touch', ['-h', '-d', '@1700000000.123456788', fx.symlinks.relative])).toEqual([
      'links/relative: mtimeNs 1700000000123456789 != 1700000000123456788',
    ]);
    expect(await step('touch', ['-h', '-d', '@1700000000.5', 'hardlinks'])).toEqual([
      'hardlinks: mtimeNs 1700000100987654321 != 1700000000500000000',
    ]);
    // Removing a file also bumps its directory's mtime, unless dir mtimes are ignored.
    expect(await step('rm', [fx.regular.oneByte], { ignoreDirMtime: true })).toEqual([
      'files/one-byte: missing (file)',
    ]);
    expect(await step('setfattr', ['-x', 'user.bin', fx.xattrFile])).toEqual([
      'xattrs/file: xattr user.bin missing',
    ]);
    // A broken hardlink group shows on every member.
    await rm(join(fx.root, fx.hardlinks[2]));
    await check('cp', ['-p', fx.hardlinks[0], fx.hardlinks[2]], { cwd: fx.root });
    const after = await snapshotTree(fx.root, { ignore: noSparse });
    expect(
      diffTrees(before, after, { ignoreDirMtime: true }).filter((l) => l.includes('hardlinkGroup')),
    ).toHaveLength(3);
  });
});

test('umoci: new image, tar layer of the fixture, unpack; snapshot matches the source', async () => {
  const dir = await tmpDir('harness-umoci');
  const img = join(dir, 'layout');
  await check('umoci', ['init', '--layout', img]);
  await check('umoci', ['new', '--image', `${img}:t`]);
  await check('umoci', ['unpack', '--image', `${img}:t`, join(dir, 'empty')]);
  const empty = await snapshotTree(join(dir, 'empty/rootfs'));
  expect([...empty.keys()]).toEqual(['.']);

  const src = join(dir, 'src');
  await mkdir(src);
  const fx = await makeFixtureTree(src);
  // No tar layer can carry a socket; the sparse file would just be 1 GiB of zeros to pack.
  const skip = new Set([fx.socket, fx.sparse]);
  const expected = await snapshotTree(src, { ignore: (rel) => skip.has(rel.toString('latin1')) });
  // GNU tar, PAX format: ns mtimes, xattrs incl. security.capability, big ids, non-UTF-8 names.
  await check('tar', [
    '--format=posix',
    '--xattrs',
    '--xattrs-include=*',
    '--numeric-owner',
    ...[...skip].map((p) => `--exclude=./${p}`),
    '-C',
    src,
    '-cf',
    join(dir, 'layer.tar'),
    '.',
  ]);
  await check('umoci', ['raw', 'add-layer', '--image', `${img}:t`, join(dir, 'layer.tar')]);
  await check('umoci', ['unpack', '--image', `${img}:t`, join(dir, 'bundle')]);
  expect(diffTrees(expected, await snapshotTree(join(dir, 'bundle/rootfs')))).toEqual([]);
});
