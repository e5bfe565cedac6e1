// What users see and trust: the environment kept in the image, credentials left out, the job summary
// and the plain-text report, progress lines, and running under sudo when the tree needs root.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { runAction, runCli, type ActionResult } from '../helpers/action.js';
import { pushLayout, unpack } from '../helpers/image.js';
import { startRegistry, type Registry } from '../helpers/registry.js';
import { check, cleanupAll, onCleanup, run, tmpDir } from '../helpers/tools.js';
import { diffTrees, snapshotTree } from '../helpers/tree.js';

let registry: Registry;

beforeAll(async () => {
  registry = await startRegistry();
});
afterAll(cleanupAll);

interface ImageConfig {
  config: { Env?: string[] };
}

/** The config of the image a dry run wrote, read from the layout's index. */
async function layoutConfig(layout: string): Promise<ImageConfig> {
  const blob = (digest: string) => readFile(path.join(layout, 'blobs', 'sha256', digest.slice(7)), 'utf8');
  const index = JSON.parse(await readFile(path.join(layout, 'index.json'), 'utf8'));
  const manifest = JSON.parse(await blob(index.manifests[0].digest));
  return JSON.parse(await blob(manifest.config.digest));
}

async function dryRun(
  root: string,
  inputs: Record<string, string> = {},
  env: Record<string, string> = {},
): Promise<{ r: ActionResult; layout: string }> {
  const layout = path.join(await tmpDir('layout'), 'L');
  const r = await runAction({ root, 'dry-run': 'true', output: layout, ...inputs }, { env });
  expect(r.errors).toEqual([]);
  expect(r.code).toBe(0);
  return { r, layout };
}

async function writeFiles(root: string, files: Record<string, string | Buffer>): Promise<void> {
  for (const [p, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(root, p)), { recursive: true });
    await writeFile(path.join(root, p), content);
  }
}

/** Every line the run printed, except the masking commands the runner consumes (they carry secrets). */
const shown = (r: ActionResult) =>
  (r.stdout + r.stderr).split('\n').filter((l) => !l.startsWith('::add-mask::'));

describe('environment persistence', () => {
  const jobEnv = {
    PATH: `/opt/new-tool/bin:${process.env.PATH}`,
    FOO: 'bar',
    MY_API_TOKEN: 'my-api-token-value-123',
    GITHUB_TOKEN: 'ghs_githubtokenvalue123',
    GITHUB_REPOSITORY: 'o/r',
    RUNNER_OS: 'Linux',
    ACTIONS_RUNTIME_TOKEN: 'actions-runtime-token-123',
    CI: 'true',
  };

  it('keeps the new PATH and FOO over the base Env, and no secret or runner variable', async () => {
    const baseTree = path.join(await tmpDir('envbase'), 'root');
    await writeFiles(baseTree, { 'etc/os-release': 'ID=test\n' });
    const baseLayout = (
      await dryRun(baseTree, {}, { PATH: '/usr/bin:/bin', BASEVAR: 'from-base', LANG: 'C.UTF-8' })
    ).layout;
    expect((await layoutConfig(baseLayout)).config.Env).toEqual([
      'BASEVAR=from-base',
      'LANG=C.UTF-8',
      'PATH=/usr/bin:/bin',
    ]);
    const baseRef = `${registry.host}/env/base:v1`;
    await pushLayout(baseLayout, 'latest', baseRef);

    const tree = path.join(await tmpDir('envtree'), 'root');
    await writeFiles(tree, { 'etc/os-release': 'ID=test\n', 'opt/new-tool/bin/tool': '#!/bin/sh\n' });
    const { r, layout } = await dryRun(
      tree,
      { 'base-image': baseRef, 'insecure-registry': 'true' },
      { ...jobEnv, LANG: 'C.UTF-8' },
    );
    const env = (await layoutConfig(layout)).config.Env;
    expect(env).toEqual(['BASEVAR=from-base', 'LANG=C.UTF-8', `PATH=${jobEnv.PATH}`, 'FOO=bar']);
    const text = JSON.stringify(env);
    for (const v of [jobEnv.MY_API_TOKEN, jobEnv.GITHUB_TOKEN, jobEnv.ACTIONS_RUNTIME_TOKEN])
      expect(text).not.toContain(v);
    expect(text).not.toMatch(/GITHUB_|RUNNER_|ACTIONS_|INPUT_|HOME=|CI=/);
    // The log names what was kept and masked, never a value.
    expect(shown(r).join('\n')).toContain('environment kept in the image: FOO, PATH');
    expect(shown(r).join('\n')).toContain('MY_API_TOKEN (name looks secret)');
    expect(shown(r).join('\n')).not.toContain(jobEnv.MY_API_TOKEN);
  });

  it('leaves out env-mask names, and everything with persist-env false', async () => {
    const tree = path.join(await tmpDir('envmask'), 'root');
    await writeFiles(tree, { 'a/file': 'x' });
    const masked = await dryRun(tree, { 'env-mask': 'FOO\nLANG*' }, { ...jobEnv, LANG: 'C', LANGUAGE: 'en' });
    expect((await layoutConfig(masked.layout)).config.Env).toEqual([`PATH=${jobEnv.PATH}`]);
    const off = await dryRun(tree, { 'persist-env': 'false' }, jobEnv);
    expect((await layoutConfig(off.layout)).config.Env).toBeUndefined();
  });
});

describe('credentials', () => {
  const credentials = {
    'root/.docker/config.json': '{"auths":{"r.example":{"auth":"dXNlcjpwYXNz"}}}',
    'root/.git-credentials': 'https://x:secret@github.com\n',
    'home/runner/.npmrc': '//npm.example.com/:_authToken=npm_secret\n',
    'home/runner/.config/gh/hosts.yml': 'github.com:\n  oauth_token: gho_secret\n',
    'home/runner/.aws/credentials': '[default]\naws_secret_access_key = s\n',
    'home/runner/.config/gcloud/credentials.db': 'sqlite',
    'home/runner/.ssh/id_ed25519': '-----BEGIN OPENSSH PRIVATE KEY-----\n',
    'etc/ssh/ssh_host_ed25519_key': '-----BEGIN OPENSSH PRIVATE KEY-----\n',
    'home/runner/actions-runner/.credentials': '{"scheme":"OAuth"}',
    'home/runner/actions-runner/.runner': '{"agentId":1}',
  };
  const harmless = {
    'home/other/.npmrc': 'registry=https://npm.example.com/\n',
    'home/runner/.ssh/id_ed25519.pub': 'ssh-ed25519 AAAA\n',
    'home/runner/.ssh/known_hosts': 'github.com ssh-ed25519 AAAA\n',
    'etc/ssh/sshd_config': 'Port 22\n',
  };
  let tree: string;

  beforeAll(async () => {
    tree = path.join(await tmpDir('creds'), 'root');
    await writeFiles(tree, { ...credentials, ...harmless });
  });

  it('leaves every credential file out by default, with a warning naming each', async () => {
    const { r, layout } = await dryRun(tree);
    const rootfs = await unpack(layout);
    for (const p of Object.keys(credentials)) expect(existsSync(path.join(rootfs, p)), p).toBe(false);
    for (const p of Object.keys(harmless)) expect(existsSync(path.join(rootfs, p)), p).toBe(true);
    const warnings = r.stdout.split('\n').filter((l) => l.startsWith('::warning::left out'));
    const named = Object.keys(credentials).map((p) =>
      p.startsWith('home/runner/.config/gcloud') ? 'home/runner/.config/gcloud' : p,
    );
    expect(warnings.map((w) => /left out \/(\S+):/.exec(w)?.[1]).sort()).toEqual(named.sort());
  });

  it('keeps the ones named in include', async () => {
    const { r, layout } = await dryRun(tree, {
      include: '/root/.docker/config.json\n/home/runner/.ssh/id_*',
    });
    const rootfs = await unpack(layout);
    expect(await readFile(path.join(rootfs, 'root/.docker/config.json'), 'utf8')).toBe(
      credentials['root/.docker/config.json'],
    );
    expect(existsSync(path.join(rootfs, 'home/runner/.ssh/id_ed25519'))).toBe(true);
    expect(existsSync(path.join(rootfs, 'root/.git-credentials'))).toBe(false);
    expect(r.stdout).not.toContain('left out /root/.docker/config.json');
  });

  it("keeps a checked-out workspace with its history, without checkout's persisted token", async () => {
    const work = await tmpDir('checkout');
    const git = (...args: string[]) =>
      check('git', ['-c', 'user.name=t', '-c', 'user.email=t@e', '-c', 'init.defaultBranch=main', ...args]);
    const origin = path.join(work, 'origin');
    await git('init', '-q', origin);
    for (const n of [1, 2, 3]) {
      await writeFile(path.join(origin, 'file'), `v${n}\n`);
      await git('-C', origin, 'add', 'file');
      await git('-C', origin, 'commit', '-q', '-m', `commit ${n}`);
    }
    const root = path.join(work, 'root');
    const workspace = path.join(root, 'home/runner/work/r/r');
    await mkdir(path.dirname(workspace), { recursive: true });
    await git('clone', '-q', origin, workspace);
    // What actions/checkout leaves behind with persist-credentials (its default).
    const token = 'ghs_' + randomBytes(18).toString('hex');
    const header = `AUTHORIZATION: basic ${Buffer.from(`x-access-token:${token}`).toString('base64')}`;
    await git('-C', workspace, 'config', '--local', 'http.https://github.com/.extraheader', header);

    const { r, layout } = await dryRun(root, {}, { GITHUB_WORKSPACE: workspace });
    const rootfs = await unpack(layout);
    const captured = path.join(rootfs, 'home/runner/work/r/r');
    const log = await check('git', ['-C', captured, 'log', '--format=%s']);
    expect(log.stdout.trim().split('\n')).toEqual(['commit 3', 'commit 2', 'commit 1']);
    expect((await check('git', ['-C', captured, 'status', '--porcelain'])).stdout).toBe('');
    const extra = await run('git', [
      '-C',
      captured,
      'config',
      '--get',
      'http.https://github.com/.extraheader',
    ]);
    expect(extra.code).toBe(1); // not set
    expect(await readFile(path.join(captured, '.git/config'), 'utf8')).toContain('[remote "origin"]');
    // Not in any blob of the image, nor in anything printed.
    const encoded = Buffer.from(`x-access-token:${token}`).toString('base64');
    const blobs = path.join(layout, 'blobs', 'sha256');
    for (const name of await readdir(blobs)) {
      const bytes = await readFile(path.join(blobs, name));
      const plain = bytes[0] === 0x1f && bytes[1] === 0x8b ? gunzipSync(bytes) : bytes;
      expect(plain.includes(token) || plain.includes(encoded), name).toBe(false);
    }
    expect(shown(r).join('\n')).not.toMatch(new RegExp(`${token}|${encoded.replace(/[+/=]/g, '.')}`));
    expect(r.stdout).toContain(`::add-mask::${encoded}`);
    expect(r.stdout).toMatch(/::warning::.*\.git\/config: removed the credentials it holds/);
  });
});

describe('job summary, report and progress', () => {
  let tree: string;
  const sizes = { 'usr/lib/big': 3_000_000, 'usr/bin/tool': 1_000_000, 'opt/sdk/lib': 2_000_000 };

  beforeAll(async () => {
    tree = path.join(await tmpDir('summary'), 'root');
    await writeFiles(tree, Object.fromEntries(Object.entries(sizes).map(([p, n]) => [p, randomBytes(n)])));
  });

  it('writes a job summary with the image, layers, largest directories, environment and times', async () => {
    const summaryFile = path.join(await tmpDir('summary-file'), 'summary.md');
    await writeFile(summaryFile, '');
    const { r } = await dryRun(
      tree,
      { 'layer-size': '2MiB' },
      { GITHUB_STEP_SUMMARY: summaryFile, FOO: 'bar' },
    );
    const md = await readFile(summaryFile, 'utf8');
    expect(md).toContain(`@${r.outputs.digest}`);
    const section = (h: string) => md.split(`### ${h}`)[1].split('\n### ')[0];
    const rows = (h: string) =>
      section(h)
        .split('\n')
        .filter((l) => /^\| [^-]/.test(l))
        .slice(1);
    // One row per layer of the manifest (no base here).
    expect(rows('Layers')).toHaveLength(Number(r.outputs.layers));
    const entries = rows('Layers').reduce((n, row) => n + Number(row.split('|')[3]), 0);
    // The three files and /usr, /usr/lib, /usr/bin, /opt, /opt/sdk; /usr is split between two layers,
    // and each carries it.
    expect(entries).toBe(3 + 5 + 1);
    // Largest first, with the sizes of the tree.
    const largest = rows('Where the bytes are').map((row) =>
      row
        .split('|')[1]
        .replace(/<\/?code>/g, '')
        .trim(),
    );
    expect(largest.slice(0, 3)).toEqual(['/usr', '/usr/lib', '/opt']);
    expect(section('Where the bytes are')).toContain('pie showData');
    expect(section('Environment')).toContain('<code>FOO</code>');
    expect(rows('Time').map((row) => row.split('|')[1].trim())).toEqual([
      'base image',
      'walk and changes',
      'inventory',
      'layers',
      'attestations',
      'layout',
      '**total**',
    ]);
    // The plain-text twin is for terminals: not printed in Actions.
    expect(r.stdout).not.toContain('Largest directories');
  });

  it('prints the plain-text report outside Actions, and nothing of it with quiet', async () => {
    const { r } = await dryRun(tree, { 'layer-size': '2MiB' }, { GITHUB_ACTIONS: '' });
    const lines = r.stdout.split('\n');
    const at = lines.indexOf('Layers:');
    expect(at).toBeGreaterThan(0);
    const blank = lines.indexOf('', at);
    const layerRows = lines.slice(at + 2, blank); // after the heading and the column names
    expect(layerRows).toHaveLength(Number(r.outputs.layers));
    expect(r.stdout).toMatch(/Largest directories[^\n]*\n\s+3\.8 MiB\s+\/usr\n/); // 3 + 1 MB
    const quiet = await dryRun(tree, { quiet: 'true' }, { GITHUB_ACTIONS: '' });
    expect(quiet.r.stdout).not.toContain('Layers:');
    expect(quiet.r.stdout).not.toContain('::group::');
    expect(quiet.r.stdout).toContain(`digest=${quiet.r.outputs.digest}`);
  });

  it('prints progress lines while a slow capture runs', async () => {
    const slow = path.join(await tmpDir('slow'), 'root');
    await mkdir(path.join(slow, 'data'), { recursive: true });
    for (let i = 0; i < 6; i++) await writeFile(path.join(slow, 'data', `r${i}`), randomBytes(8 << 20));
    const { r } = await dryRun(
      slow,
      { 'compression-level': '9', concurrency: '1', 'layer-size': '16MiB' },
      { SNAPSHOT_PROGRESS_SECONDS: '0.3' },
    );
    const progress = r.stdout.split('\n').filter((l) => l.startsWith('layers: '));
    expect(progress.length).toBeGreaterThanOrEqual(2);
    for (const line of progress)
      expect(line).toMatch(/^layers: [\d.]+ \w+ of 48\.0 MiB \(\d+ %\), [\d.]+ \w+ compressed, [\d.]+ MB\/s/);
    const percents = progress.map((l) => Number(/\((\d+) %\)/.exec(l)![1]));
    expect(percents).toEqual([...percents].sort((a, b) => a - b));
  });
});

describe('privileges', () => {
  const SUDOER = 'snapshot-sudoer';
  const PLAIN = 'snapshot-plain';
  const SUDOERS = '/etc/sudoers.d/snapshot-action-tests';
  let tree: string;
  let out: string;

  const asUser = (user: string, output: string) =>
    runCli(['--root', tree, '--dry-run', '--output', output], {
      prefix: ['runuser', '-u', user, '--'],
      env: { PATH: process.env.PATH, HOME: `/home/${user}` },
    });

  beforeAll(async () => {
    for (const user of [SUDOER, PLAIN]) {
      if ((await run('id', [user])).code !== 0) await check('useradd', ['--create-home', user]);
    }
    await writeFile(SUDOERS, `${SUDOER} ALL=(ALL) NOPASSWD: ALL\n`, { mode: 0o440 });
    onCleanup(() => rm(SUDOERS, { force: true }));
    const work = await tmpDir('privileges');
    await chmod(work, 0o755);
    tree = path.join(work, 'root');
    await writeFiles(tree, {
      'open/readme': 'anyone\n',
      'private/key': 'root only\n',
      shadow: 'root:*:1::\n',
    });
    await chmod(path.join(tree, 'private'), 0o700);
    await chmod(path.join(tree, 'shadow'), 0o600);
    out = path.join(work, 'out');
    await mkdir(out);
    await chmod(out, 0o777);
  });

  it('without sudo, stops with one line saying the tree needs root, and writes nothing', async () => {
    const layout = path.join(out, 'plain');
    const r = await asUser(PLAIN, layout);
    expect(r.code).toBe(1);
    const errors = r.stdout.split('\n').filter((l) => l.startsWith('::error::'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/2 path\(s\) cannot be read .*\/private.*needs root/);
    expect(existsSync(layout)).toBe(false);
    expect(await readdir(out)).not.toContain('plain');
  });

  it('with passwordless sudo, captures everything under sudo and hands the layout back', async () => {
    const layout = path.join(out, 'sudo');
    const r = await asUser(SUDOER, layout);
    expect(r.stdout + r.stderr).toContain('running the capture again under sudo');
    expect(r.code).toBe(0);
    const uid = Number((await check('id', ['-u', SUDOER])).stdout.trim());
    for (const p of [layout, path.join(layout, 'index.json'), path.join(layout, 'blobs/sha256')])
      expect((await stat(p)).uid, p).toBe(uid);
    const [src, got] = [await snapshotTree(tree), await snapshotTree(await unpack(layout))];
    src.delete('.'); // the root directory itself is not in a layer
    got.delete('.');
    expect(diffTrees(src, got)).toEqual([]);
    expect(got.get('private/key')).toBeDefined();
    // Cleanup as root is fine: the files are the sudoer's now.
    await chown(layout, 0, 0);
  });
});
