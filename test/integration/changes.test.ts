// Acceptance for change capture: the custom-image scenario. A Debian rootfs is pushed as the base
// image and unpacked as the sandbox; the pre step records the baseline; in a chroot a package is
// installed with dpkg, a file deleted, a directory replaced by a symlink, a capability set; the action
// pushes the changes on top of the base. The result must equal the sandbox and run the program.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { copyFile, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { runAction, type ActionResult } from '../helpers/action.js';
import { debianRootfs, inspect, pull, unpack } from '../helpers/image.js';
import { startRegistry, type Registry } from '../helpers/registry.js';
import { check, cleanupAll, onCleanup, run, tmpDir } from '../helpers/tools.js';
import { diffTrees, snapshotTree, type TreeSnapshot } from '../helpers/tree.js';

const VOLATILE = ['proc', 'sys', 'dev', 'run', 'tmp'];

let registry: Registry;
let baseRef: string;
let baseLayers: string[];
let debPath: string;

function expectOk(r: ActionResult): void {
  expect(r.errors).toEqual([]);
  expect(r.code).toBe(0);
}

/** A tree without what a capture leaves out by design: the volatile directories' contents and times. */
async function comparable(root: string): Promise<TreeSnapshot> {
  const inVolatile = (rel: Buffer) => VOLATILE.some((d) => rel.toString().startsWith(d + '/'));
  const snap = await snapshotTree(root, {
    ignore: (rel) => inVolatile(rel) || rel.toString() === '.complete',
  });
  // Each image carries its own marker (etc/depot-snapshot.json); the rest must be equal.
  for (const key of ['.', ...VOLATILE, 'etc/depot-snapshot.json']) snap.delete(key);
  return snap;
}

/** `dpkg -i` of GNU hello inside the tree, as a setup step would install a tool. */
async function installHello(root: string): Promise<void> {
  await copyFile(debPath, path.join(root, 'tmp', 'hello.deb'));
  const env = ['/usr/bin/env', '-i', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin'];
  await check('/usr/sbin/chroot', [root, ...env, 'dpkg', '-i', '/tmp/hello.deb']);
}

/**
 * The pushed image, pulled and unpacked, equals the sandbox (both seen through `view`), and the
 * installed program runs in it.
 */
async function expectImageEqualsAndRuns(
  ref: string,
  sandbox: string,
  view: (root: string) => Promise<TreeSnapshot> = comparable,
): Promise<void> {
  const result = await unpack(await pull(ref));
  expect(diffTrees(await view(sandbox), await view(result))).toEqual([]);
  const hello = await check('/usr/sbin/chroot', [
    result,
    '/usr/bin/env',
    '-i',
    'PATH=/usr/bin:/bin',
    'hello',
  ]);
  expect(hello.stdout).toContain('Hello, world!');
}

/** The sandbox as a job would get it: the base image pulled and unpacked. */
async function sandboxFromBase(): Promise<string> {
  return unpack(await pull(baseRef));
}

beforeAll(async () => {
  registry = await startRegistry();
  const rootfs = await debianRootfs();
  baseRef = `${registry.host}/base/debian:bookworm`;
  expectOk(await runAction({ root: rootfs, image: baseRef, exclude: '/.complete' }));
  // The base was made by this action: its last layer is its marker, which a snapshot replaces.
  baseLayers = (await inspect(baseRef)).Layers.slice(0, -1);
  // The package to install, fetched once from Debian's archive.
  const debs = await tmpDir('debs');
  await check('apt-get', ['download', 'hello'], { cwd: debs });
  debPath = path.join(debs, (await check('ls', [debs])).stdout.trim().split('\n')[0]);
});
afterAll(cleanupAll);

describe('custom image from a baseline', () => {
  it('captures only the changes on top of the base, and the result equals the sandbox', async () => {
    const sandbox = await sandboxFromBase();
    const inputs = { root: sandbox, 'base-image': baseRef, image: `${registry.host}/custom/img:v1` };
    const pre = await runAction(inputs, { pre: true });
    expectOk(pre);
    expect(pre.state.baseline).toBeTruthy();

    // The job's setup steps.
    await installHello(sandbox);
    await rm(path.join(sandbox, 'etc', 'issue.net'));
    await rm(path.join(sandbox, 'usr', 'share', 'doc', 'bash'), { recursive: true });
    await symlink('/usr/share/doc/dash', path.join(sandbox, 'usr', 'share', 'doc', 'bash'));
    await check('setcap', ['cap_net_raw+ep', path.join(sandbox, 'usr', 'bin', 'true')]);

    const r = await runAction(inputs, { state: pre.state });
    expectOk(r);
    expect(r.outputs.changes).toBe('baseline');
    const pushed = await inspect(`${registry.host}/custom/img:v1`);
    expect(pushed.Digest).toBe(r.outputs.digest);
    expect(pushed.Layers.slice(0, baseLayers.length)).toEqual(baseLayers);
    expect(pushed.Layers.length).toBeGreaterThan(baseLayers.length);

    await expectImageEqualsAndRuns(`${registry.host}/custom/img:v1`, sandbox);

    // Only the changes were captured: compare the new layers with the base's whole size.
    const raw = JSON.parse(
      (
        await check('skopeo', [
          'inspect',
          '--raw',
          '--tls-verify=false',
          `docker://${registry.host}/custom/img:v1`,
        ])
      ).stdout,
    );
    const sizes: number[] = raw.layers.map((l: { size: number }) => l.size);
    const baseSize = sizes.slice(0, baseLayers.length).reduce((a, b) => a + b, 0);
    const newSize = sizes.slice(baseLayers.length).reduce((a, b) => a + b, 0);
    console.log(
      `new layers: ${newSize} bytes against ${baseSize} bytes for the whole base (${((100 * newSize) / baseSize).toFixed(1)} %)`,
    );
    expect(newSize).toBeLessThan(baseSize / 10);

    // Nothing changed since: a second snapshot is the base's layers and a new marker, and uploads
    // nothing but the marker and the config.
    const pre2 = await runAction(inputs, { pre: true });
    expectOk(pre2);
    const again = await runAction(
      { ...inputs, image: `${registry.host}/custom/img:v2` },
      { state: pre2.state },
    );
    expectOk(again);
    expect(Number(again.outputs.layers)).toBe(baseLayers.length + 1);
    expect(Number(again.outputs.uploaded)).toBeLessThan(64 * 1024);
  });

  it('refuses a corrupt or foreign baseline with one clear line', async () => {
    const sandbox = await tmpDir('sb');
    const bad = path.join(await tmpDir('bl'), 'baseline');
    await check('sh', ['-c', `echo garbage | gzip > ${bad}`]);
    const r = await runAction({
      root: sandbox,
      'base-image': baseRef,
      image: `${registry.host}/custom/bad:v1`,
      changes: 'baseline',
      baseline: bad,
    });
    expect(r.code).toBe(1);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatch(/not a baseline/);
  });

  it('without a baseline, captures the whole tree on top of the base and says so', async () => {
    const small = await tmpDir('small');
    await check('sh', ['-c', `echo hi > ${small}/f`]);
    const r = await runAction({
      root: small,
      'base-image': baseRef,
      image: `${registry.host}/custom/full:v1`,
    });
    expectOk(r);
    expect(r.outputs.changes).toBe('full');
    expect(r.stdout).toMatch(/no baseline was recorded/);
    expect(Number(r.outputs.layers)).toBe(baseLayers.length + 1);
  });
});

describe('custom image from an overlay', () => {
  it('takes the upper dir as the change set, opaque directories included, and equals the merged view', async () => {
    const lower = await sandboxFromBase();
    const dir = await tmpDir('overlay');
    const [upper, work, merged] = ['upper', 'work', 'merged'].map((d) => path.join(dir, d));
    for (const d of [upper, work, merged]) await mkdir(d);
    await check('mount', [
      '-t',
      'overlay',
      'overlay',
      '-o',
      `lowerdir=${lower},upperdir=${upper},workdir=${work}`,
      merged,
    ]);
    onCleanup(() => run('umount', [merged]).then(() => undefined));

    await installHello(merged);
    await rm(path.join(merged, 'etc', 'issue.net'));
    // Removed, then made again with other content: an opaque directory in the upper dir.
    await rm(path.join(merged, 'usr', 'share', 'doc', 'apt'), { recursive: true });
    await mkdir(path.join(merged, 'usr', 'share', 'doc', 'apt'));
    await writeFile(path.join(merged, 'usr', 'share', 'doc', 'apt', 'NEW'), 'new content\n');
    await check('setcap', ['cap_net_raw+ep', path.join(merged, 'usr', 'bin', 'true')]);

    const ref = `${registry.host}/custom/overlay:v1`;
    const metadataFile = path.join(dir, 'metadata.json');
    const r = await runAction({
      root: merged,
      'base-image': baseRef,
      image: ref,
      'metadata-file': metadataFile,
    });
    expectOk(r);
    expect(r.outputs.changes).toBe('overlay');
    await expectImageEqualsAndRuns(ref, merged);
    expect((await inspect(ref)).Layers.slice(0, baseLayers.length)).toEqual(baseLayers);

    // No pre step ran: what setup changed is read against the overlay's lower dir, the tree before.
    const { setup } = JSON.parse(await readFile(metadataFile, 'utf8'));
    const [name, version] = (
      await check('/usr/sbin/chroot', [
        merged,
        '/usr/bin/env',
        '-i',
        'PATH=/usr/bin:/bin',
        'dpkg-query',
        '-W',
        'hello',
      ])
    ).stdout
      .trim()
      .split('\t');
    expect(setup.before).toBe('overlay');
    expect(setup.ecosystems).toEqual({
      deb: { added: [expect.objectContaining({ name, version })], removed: [], upgraded: [] },
    });
  });
});

describe('snapshots of snapshots', () => {
  it('chain through the marker with no base-image: the parent layers, then only the new changes', async () => {
    let parentRef = baseRef;
    let parentLayers = baseLayers;
    for (const step of [1, 2]) {
      const sandbox = await unpack(await pull(parentRef));
      const inputs = { root: sandbox, image: `${registry.host}/chain/img:v${step}` };
      const pre = await runAction(inputs, { pre: true });
      expectOk(pre);
      await writeFile(path.join(sandbox, 'etc', `step${step}.conf`), `step ${step}\n`);
      await rm(path.join(sandbox, 'etc', step === 1 ? 'issue' : 'motd'));

      const r = await runAction(inputs, { state: pre.state });
      expectOk(r);
      expect(r.outputs.changes).toBe('baseline');
      expect(r.stdout).toContain('base image from the marker');
      const layers = (await inspect(inputs.image)).Layers;
      expect(layers.slice(0, parentLayers.length)).toEqual(parentLayers);
      expect(layers.length).toBe(parentLayers.length + 2); // the changes, then the new marker
      const result = await unpack(await pull(inputs.image));
      expect(diffTrees(await comparable(sandbox), await comparable(result))).toEqual([]);
      const marker = JSON.parse(await readFile(path.join(result, 'etc', 'depot-snapshot.json'), 'utf8'));
      expect(marker.repository).toBe(`${registry.host}/chain/img`);
      expect(marker.layers.map((l: { digest: string }) => l.digest)).toEqual(layers.slice(0, -1));
      parentRef = inputs.image;
      parentLayers = layers.slice(0, -1);
    }

    // Nothing changed: the same layers, the same marker and config, and not a byte uploaded. The
    // manifest differs from the parent's only by its base annotations (it names the parent).
    const sandbox = await unpack(await pull(parentRef));
    const inputs = { root: sandbox, image: parentRef };
    const pre = await runAction(inputs, { pre: true });
    expectOk(pre);
    const parent = await inspect(parentRef);
    const r = await runAction(inputs, { state: pre.state });
    expectOk(r);
    expect(r.outputs.uploaded, r.stdout).toBe('0');
    expect((await inspect(parentRef)).Layers).toEqual(parent.Layers);
  });
});

describe('custom image from an overlay whose upper dir mountinfo names but the job cannot reach', () => {
  // Mount points, innermost last: unmounted in reverse after each test, pass or fail.
  const mounted: string[] = [];
  afterEach(async () => {
    while (mounted.length) {
      const target = mounted.pop()!;
      if ((await run('umount', [target])).code !== 0) await run('umount', ['-l', target]);
    }
  });
  async function mount(args: string[], target: string): Promise<void> {
    await check('mount', [...args, target]);
    mounted.push(target);
  }

  /**
   * Depot's sandbox after its pivot_root: the root overlay's upper dir lives on a second disk that
   * the job sees at `<root>/rw`, while mountinfo still names it by the mounter's path, which an empty
   * tmpfs now hides.
   */
  async function pivotedOverlay(lower: string): Promise<{ merged: string; upper: string }> {
    const dir = await tmpDir('pivoted');
    const disk = path.join(dir, 'disk');
    const [hiddenUpper, work, merged] = [
      path.join(disk, 'upper'),
      path.join(disk, 'work'),
      path.join(dir, 'merged'),
    ];
    for (const d of [hiddenUpper, work, merged]) await mkdir(d, { recursive: true });
    await mount(
      ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${hiddenUpper},workdir=${work}`],
      merged,
    );
    await mkdir(path.join(merged, 'rw'));
    await mount(['--bind', disk], path.join(merged, 'rw'));
    await mount(['-t', 'tmpfs', 'tmpfs'], disk);
    const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
    expect(mountinfo).toContain(`upperdir=${hiddenUpper}`);
    expect(existsSync(hiddenUpper)).toBe(false);
    return { merged, upper: path.join(merged, 'rw', 'upper') };
  }

  /**
   * A tree without the overlay's own storage below /rw, and without /rw's own metadata: the merged
   * view shows the mounted disk's root there, the upper dir the directory it is mounted on.
   */
  async function withoutStorage(root: string): Promise<TreeSnapshot> {
    expect(existsSync(path.join(root, 'rw'))).toBe(true);
    const snap = await comparable(root);
    for (const key of [...snap.keys()]) if (key === 'rw' || key.startsWith('rw/')) snap.delete(key);
    return snap;
  }

  it('reads the changes from upper, records no baseline for it, and equals the merged view', async () => {
    const { merged, upper } = await pivotedOverlay(await sandboxFromBase());
    const ref = `${registry.host}/custom/pivoted:v1`;
    const inputs = { root: merged, upper, 'base-image': baseRef, image: ref };
    const pre = await runAction(inputs, { pre: true });
    expectOk(pre);
    expect(pre.stdout).toContain(`upper ${upper} is the overlay upper dir of ${merged}`);
    expect(pre.state.baseline).toBeUndefined();

    await installHello(merged);
    await rm(path.join(merged, 'etc', 'issue.net'));
    await rm(path.join(merged, 'usr', 'share', 'doc', 'apt'), { recursive: true });
    await mkdir(path.join(merged, 'usr', 'share', 'doc', 'apt'));
    await writeFile(path.join(merged, 'usr', 'share', 'doc', 'apt', 'NEW'), 'new content\n');
    await check('setcap', ['cap_net_raw+ep', path.join(merged, 'usr', 'bin', 'true')]);

    const r = await runAction(inputs, { state: pre.state });
    expectOk(r);
    expect(r.outputs.changes).toBe('overlay');
    expect(r.stdout).toContain(`the overlay upper dir given as upper (${upper})`);
    const pushed = await inspect(ref);
    expect(pushed.Digest).toBe(r.outputs.digest);
    expect(pushed.Layers.slice(0, baseLayers.length)).toEqual(baseLayers);
    await expectImageEqualsAndRuns(ref, merged, withoutStorage);
  });

  it("leaves the overlay's upper and work dirs out of a full capture when they lie inside root", async () => {
    // A small lower: a full capture reads all of it.
    const lower = await tmpDir('small-lower');
    await mkdir(path.join(lower, 'etc'));
    await writeFile(path.join(lower, 'etc', 'base.conf'), 'base\n');
    const { merged, upper } = await pivotedOverlay(lower);
    await writeFile(path.join(merged, 'etc', 'added.conf'), 'added\n');
    expect(existsSync(path.join(upper, 'etc', 'added.conf'))).toBe(true);
    const output = path.join(await tmpDir('pivoted-layout'), 'layout');
    const r = await runAction({ root: merged, upper, changes: 'full', 'dry-run': 'true', output });
    expectOk(r);
    expect(r.outputs.changes).toBe('full');
    const result = await unpack(output);
    expect(existsSync(path.join(result, 'rw', 'upper'))).toBe(false);
    expect(existsSync(path.join(result, 'rw', 'work'))).toBe(false);
    expect(diffTrees(await withoutStorage(merged), await withoutStorage(result))).toEqual([]);
    expect(diffTrees(await comparable(merged), await comparable(result))).toContainEqual(
      expect.stringMatching(/^rw\/upper/),
    );
  });

  it('refuses an upper that is not a readable directory with one line, before writing anything', async () => {
    const root = await tmpDir('upper-root');
    await writeFile(path.join(root, 'file'), 'x\n');
    const cases: Array<[string, RegExp]> = [
      [
        path.join(root, 'missing'),
        /^::error::upper \S+\/missing does not exist; give the overlay's upper dir/,
      ],
      [path.join(root, 'file'), /^::error::upper \S+\/file is not a directory/],
      [root, /^::error::upper \S+ is root itself/],
    ];
    for (const [upper, message] of cases) {
      const output = path.join(await tmpDir('upper-layout'), 'layout');
      for (const pre of [true, false]) {
        const r = await runAction({ root, upper, 'dry-run': 'true', output }, { pre });
        expect(r.code, upper).toBe(1);
        expect(r.errors, upper).toHaveLength(1);
        expect(r.errors[0]).toMatch(message);
        expect(existsSync(output)).toBe(false);
        expect(readdirSync(path.dirname(output))).toEqual([]);
      }
    }
  });
});

describe('a baseline without a base image', () => {
  it('is recorded when its path is given, and main captures the whole tree, saying the baseline went unused', async () => {
    const root = await tmpDir('no-base');
    await writeFile(path.join(root, 'f'), 'hi\n');
    const baseline = path.join(await tmpDir('no-base-bl'), 'baseline.gz');
    const pre = await runAction({ root, baseline }, { pre: true });
    expectOk(pre);
    expect(pre.stdout).toContain('recording the baseline anyway, because its path was given');
    expect(existsSync(baseline)).toBe(true);
    // The default path in RUNNER_TEMP is skipped: nothing could use it.
    const skipped = await runAction({ root }, { pre: true });
    expectOk(skipped);
    expect(skipped.stdout).toContain('no baseline path given: no baseline recorded');
    expect(skipped.state.baseline).toBeUndefined();

    await writeFile(path.join(root, 'g'), 'new\n');
    const output = path.join(await tmpDir('no-base-layout'), 'layout');
    const r = await runAction({ root, baseline, 'dry-run': 'true', output }, { state: pre.state });
    expectOk(r);
    expect(r.outputs.changes).toBe('full');
    expect(r.stdout).toContain(`the baseline at ${baseline} is not used`);
    const [src, got] = [await snapshotTree(root), await snapshotTree(await unpack(output))];
    for (const tree of [src, got]) tree.delete('.');
    expect(diffTrees(src, got)).toEqual([]);
  });
});
