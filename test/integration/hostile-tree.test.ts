// Trees users really have that a naive capture corrupts, aborts on, or leaks from: xattr names a tar
// record cannot carry as they are, paths deeper than any extractor can create, and credentials that
// have a second name (a hardlink). Each is captured by the bundled action and unpacked by umoci.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { link, lstat, mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { runAction, type ActionResult } from '../helpers/action.js';
import { pull, unpack } from '../helpers/image.js';
import { startRegistry, type Registry } from '../helpers/registry.js';
import { check, cleanupAll, onCleanup, tmpDir } from '../helpers/tools.js';
import { diffTrees, snapshotTree, type TreeSnapshot } from '../helpers/tree.js';
import { MAX_IMAGE_PATH } from '../../src/walk/walk.js';

let registry: Registry;

beforeAll(async () => {
  registry = await startRegistry();
});
afterAll(cleanupAll);

function expectOk(r: ActionResult): void {
  expect(r.errors).toEqual([]);
  expect(r.code).toBe(0);
}

function warnings(r: ActionResult): string[] {
  return r.stdout.split('\n').filter((l) => l.startsWith('::warning'));
}

async function dryRun(root: string): Promise<{ layout: string; result: ActionResult }> {
  const layout = path.join(await tmpDir('layout'), 'layout');
  const result = await runAction({ root, 'dry-run': 'true', output: layout });
  expectOk(result);
  return { layout, result };
}

/** Every layer of the layout's image, decompressed: what an attacker pulling the image could read. */
async function layerTars(layout: string): Promise<Buffer[]> {
  const blob = async (digest: string) => readFile(path.join(layout, 'blobs', 'sha256', digest.slice(7)));
  const index = JSON.parse(await readFile(path.join(layout, 'index.json'), 'utf8'));
  const manifest = JSON.parse((await blob(index.manifests[0].digest)).toString());
  return Promise.all(
    manifest.layers.map(async (l: { digest: string; mediaType: string }) => {
      const bytes = await blob(l.digest);
      return l.mediaType.endsWith('+gzip') ? gunzipSync(bytes) : bytes;
    }),
  );
}

/** A tree snapshot without the root itself (its mtime is the temp directory's) and the given paths. */
async function comparable(
  root: string,
  leaveOut: (rel: string) => boolean = () => false,
): Promise<TreeSnapshot> {
  const snap = await snapshotTree(root, {
    ignore: (rel) => leaveOut(rel.toString('latin1')),
  });
  for (const key of ['.', 'etc/depot-snapshot.json']) snap.delete(key);
  return snap;
}

const bytes = (...parts: Array<string | number[]>) =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));

/**
 * Xattr names a PAX record cannot hold as they are: `user.a=b` (readers split at the first `=`), on a
 * UTF-8 path (read by the native binding) and on a non-UTF-8 one (read by getfattr); and names that
 * are not UTF-8 (the binding refuses them), which Go's archive/tar reads and umoci sets byte for byte.
 */
async function addHostileXattrs(root: string): Promise<{ eqFiles: string[] }> {
  const dir = path.join(root, 'xattrs');
  await mkdir(dir, { recursive: true });
  const eq = path.join(dir, 'eq');
  await writeFile(eq, 'eq\n');
  await check('setfattr', ['-n', 'user.a=b', '-v', 'v1', eq]);
  await check('setfattr', ['-n', 'user.ok', '-v', 'kept', eq]);
  const notUtf8Name = path.join(dir, 'not-utf8-name');
  await writeFile(notUtf8Name, 'x\n');
  await check('bash', [
    '-c',
    `setfattr -n $'user.\\xff\\xfe' -v v2 "$1" && setfattr -n user.ok -v kept2 "$1"`,
    '-',
    notUtf8Name,
  ]);
  // A non-UTF-8 path: read with getfattr, whose escapes (`=` as \075) must be undone.
  await check('bash', [
    '-c',
    `cd "$1" && printf 'y\\n' > $'path-\\xfe' && setfattr -n user.c=d -v v3 $'path-\\xfe' && setfattr -n $'user.\\xfd' -v v4 $'path-\\xfe' && setfattr -n user.ok -v kept3 $'path-\\xfe'`,
    '-',
    dir,
  ]);
  return { eqFiles: ['xattrs/eq', 'xattrs/path-\\xfe'] };
}

/** 40 directories of 120 bytes, a file at the bottom: past PATH_MAX (4096) at the 34th. */
async function addDeepTree(root: string): Promise<void> {
  const name = (i: number) => String(i).padStart(3, '0') + 'd'.repeat(117);
  const script = `cd "$1" && for i in $(seq 0 39); do d=$(printf '%03d' $i)$(printf 'd%.0s' $(seq 117)); mkdir "$d" && cd "$d"; done && echo bottom > leaf`;
  expect(name(0)).toHaveLength(120);
  await check('bash', ['-c', script, '-', root]);
  // Before tmpDir's own removal (cleanups run last first): Node's rm gives up at PATH_MAX, rm -rf not.
  onCleanup(() => check('rm', ['-rf', path.dirname(root)]).then(() => {}));
}

/**
 * Moves what the image cannot hold (paths over MAX_IMAGE_PATH bytes) out of the tree, the mtime of the
 * directory it was in kept, so the source can be compared with the image (getfattr -R, which the tree
 * comparer runs, stops at PATH_MAX). Returns the deepest path kept.
 */
async function pruneTooDeep(root: string): Promise<string> {
  let kept = root;
  for (const name of await readdir(root)) if (/^000d+$/.test(name)) kept = path.join(root, name);
  for (;;) {
    const [next] = await readdir(kept);
    const rel = path.relative(root, path.join(kept, next));
    if (rel.length + 1 > MAX_IMAGE_PATH) {
      const { mtimeNs } = await lstat(kept, { bigint: true });
      await rename(path.join(kept, next), path.join(path.dirname(root), 'pruned'));
      const ns = mtimeNs.toString();
      await check('touch', ['-m', '-d', `@${ns.slice(0, -9)}.${ns.slice(-9)}`, kept]);
      return path.relative(root, kept);
    }
    kept = path.join(kept, next);
  }
}

interface Secrets {
  /** The secret bytes, none of which may reach a layer. */
  values: Buffer[];
  /** The other names of credential files, which must be left out with a warning. */
  otherNames: string[];
  credentialPaths: string[];
}

/**
 * Credentials with a second name: a Docker config linked from a path the walk meets first and one it
 * meets last, an SSH host key, a file inside a credential directory, the runner's `.credentials`.
 */
async function addLinkedCredentials(root: string): Promise<Secrets> {
  const values: Buffer[] = [];
  const credentialPaths: string[] = [];
  const otherNames: string[] = [];
  const add = async (credential: string, others: string[]) => {
    const secret = Buffer.from(`SECRET-${randomBytes(16).toString('hex')}`);
    values.push(secret);
    await mkdir(path.dirname(path.join(root, credential)), { recursive: true });
    await writeFile(path.join(root, credential), secret);
    credentialPaths.push(credential);
    for (const other of others) {
      await mkdir(path.dirname(path.join(root, other)), { recursive: true });
      await link(path.join(root, credential), path.join(root, other));
      otherNames.push(other);
    }
  };
  await add('root/.docker/config.json', ['opt/aa-early-copy', 'zz/late-copy']);
  await add('etc/ssh/ssh_host_ed25519_key', ['usr/share/host-key-copy']);
  await add('root/.config/gcloud/credentials.db', ['srv/gcloud-db']);
  await add('home/runner/actions-runner/.credentials', ['var/backup/runner-credentials']);
  // An ordinary hardlink pair stays one.
  await mkdir(path.join(root, 'plain'), { recursive: true });
  await writeFile(path.join(root, 'plain', 'one'), 'plain\n');
  await link(path.join(root, 'plain', 'one'), path.join(root, 'plain', 'two'));
  return { values, otherNames, credentialPaths };
}

function expectNoSecretIn(tars: Buffer[], secrets: Secrets): void {
  for (const tar of tars) for (const secret of secrets.values) expect(tar.includes(secret)).toBe(false);
}

function leftOutForCredentials(secrets: Secrets) {
  const names = new Set([...secrets.credentialPaths, ...secrets.otherNames]);
  return (rel: string) =>
    names.has(rel) || rel === 'root/.config/gcloud' || rel.startsWith('root/.config/gcloud/');
}

describe('hostile trees', () => {
  it('xattr names: "=" left out with a warning naming file and name, non-UTF-8 names carried', async () => {
    const root = path.join(await tmpDir('xattr-tree'), 'root');
    // Over one batch of the xattr reader: the hostile files are read on its worker thread.
    await mkdir(path.join(root, 'many'), { recursive: true });
    for (let i = 0; i < 2100; i++) await writeFile(path.join(root, 'many', `f${i}`), '');
    const { eqFiles } = await addHostileXattrs(root);

    const { layout, result } = await dryRun(root);
    const warned = warnings(result);
    expect(warned.filter((w) => w.includes('xattrs/eq') && w.includes('"user.a=b"'))).toHaveLength(1);
    expect(warned.filter((w) => w.includes('xattrs/path-\\xfe') && w.includes('"user.c=d"'))).toHaveLength(1);

    const out = await comparable(await unpack(layout));
    expect(diffTrees(await comparable(root), out)).toEqual(
      [`${eqFiles[0]}: xattr user.a=b missing`, `${eqFiles[1]}: xattr user.c=d missing`].sort(),
    );
    expect(out.get('xattrs/not-utf8-name')!.xattrs).toEqual({
      [bytes('user.', [0xff, 0xfe]).toString('latin1')]: Buffer.from('v2').toString('base64'),
      'user.ok': Buffer.from('kept2').toString('base64'),
    });
  });

  it('paths longer than an image can hold: left out with one short warning, the rest captured', async () => {
    const root = path.join(await tmpDir('deep-tree'), 'root');
    await mkdir(path.join(root, 'shallow'), { recursive: true });
    await writeFile(path.join(root, 'shallow', 'file'), 'kept\n');
    await addDeepTree(root);

    const { layout, result } = await dryRun(root);
    // No multi-KB line (the longest others print are lists of variable names).
    for (const line of [...result.stdout.split('\n'), ...result.stderr.split('\n')])
      expect(line.length).toBeLessThan(1000);
    const warned = warnings(result).filter((w) => /left out \/000d+…d+ and anything below it/.test(w));
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatch(/its path is 3872 bytes/);

    const out = await comparable(await unpack(layout));
    const deepest = await pruneTooDeep(root);
    expect(deepest.length).toBeGreaterThan(3700);
    expect(out.has(deepest)).toBe(true);
    expect(diffTrees(await comparable(root), out)).toEqual([]);
  });

  it('a credential with other names (hardlinks) is left out under every name, warned about by each', async () => {
    const root = path.join(await tmpDir('linked-secrets'), 'root');
    const secrets = await addLinkedCredentials(root);

    const { layout, result } = await dryRun(root);
    const warned = warnings(result);
    for (const other of secrets.otherNames)
      expect(
        warned.filter((w) => w.includes(`left out /${other}: the same file (a hardlink) as`)),
      ).toHaveLength(1);
    expectNoSecretIn(await layerTars(layout), secrets);

    const out = await comparable(await unpack(layout));
    expect(diffTrees(await comparable(root, leftOutForCredentials(secrets)), out)).toEqual([]);
    expect(out.get('plain/one')!.hardlinkGroup).toBe(JSON.stringify(['plain/one', 'plain/two']));
  });

  it('changes: baseline (pre step, then main) applies the same rules to what the job added', async () => {
    const root = path.join(await tmpDir('baseline-tree'), 'root');
    await mkdir(path.join(root, 'etc'), { recursive: true });
    await writeFile(path.join(root, 'etc', 'os-release'), 'ID=test\n');
    const baseRef = `${registry.host}/hostile/base:v1`;
    expectOk(await runAction({ root, image: baseRef }));

    const inputs = {
      root,
      'base-image': baseRef,
      changes: 'baseline',
      image: `${registry.host}/hostile/img:v1`,
    };
    const pre = await runAction(inputs, { pre: true });
    expectOk(pre);
    // The job's steps make the hostile tree.
    const { eqFiles } = await addHostileXattrs(root);
    await addDeepTree(root);
    const secrets = await addLinkedCredentials(root);

    const r = await runAction(inputs, { state: pre.state });
    expectOk(r);
    expect(r.outputs.changes).toBe('baseline');
    const warned = warnings(r);
    for (const other of secrets.otherNames)
      expect(warned.some((w) => w.includes(`left out /${other}: the same file (a hardlink) as`))).toBe(true);
    expect(warned.some((w) => w.includes('"user.a=b"'))).toBe(true);

    const pulled = await pull(`${registry.host}/hostile/img:v1`);
    expectNoSecretIn(await layerTars(pulled), secrets);
    const out = await comparable(await unpack(pulled));
    await pruneTooDeep(root);
    const src = await comparable(root, leftOutForCredentials(secrets));
    expect(diffTrees(src, out)).toEqual(
      [`${eqFiles[0]}: xattr user.a=b missing`, `${eqFiles[1]}: xattr user.c=d missing`].sort(),
    );
  });
});
