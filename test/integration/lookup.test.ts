// The `key` input (a snapshot whose tags already hold an image made from the same inputs captures
// nothing), `mode: lookup` (hit or miss, writing nothing), and `pull --load` into Docker and podman:
// real docker-registry instances, a counting proxy in front, skopeo to read what the registry holds,
// and a private dockerd and podman to run what was loaded.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { NODE24, copyShippedAction, runAction, runCli, type ActionResult } from '../helpers/action.js';
import { debianRootfs, inspect } from '../helpers/image.js';
import { startProxy, type Proxy } from '../helpers/proxy.js';
import { startRegistry, type Registry } from '../helpers/registry.js';
import { podman, startDocker } from '../helpers/runtimes.js';
import { check, cleanupAll, freePort, run, tmpDir } from '../helpers/tools.js';
import YAML from 'yaml';
import { Ajv2020 } from 'ajv/dist/2020.js';

const KEY_ANNOTATION = 'dev.depot.snapshot.key';

let open: Registry;
let basic: Registry; // htpasswd: tester / secret
let proxy: Proxy; // in front of open, counting requests
let tree: string;

/** The metadata file, checked against metadata.schema.json. */
async function metadata(file: string): Promise<Record<string, unknown>> {
  const schema = JSON.parse(await readFile('metadata.schema.json', 'utf8'));
  const data = JSON.parse(await readFile(file, 'utf8'));
  const ajv = new Ajv2020({ allErrors: true });
  expect(ajv.validate(schema, data), JSON.stringify(ajv.errors)).toBe(true);
  return data;
}

function expectOk(r: ActionResult): void {
  expect(r.errors).toEqual([]);
  expect(r.code).toBe(0);
}

/** The manifest a tag holds, as the registry serves it (read with skopeo). */
async function rawManifest(ref: string): Promise<{ annotations?: Record<string, string> }> {
  return JSON.parse(
    (await check('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`])).stdout,
  );
}

/** Requests that write to the registry: uploads, mounts, manifests. */
function writes(p: Proxy): string[] {
  return p.requests.filter((q) => !['GET', 'HEAD'].includes(q.method)).map((q) => `${q.method} ${q.path}`);
}

async function makeTree(dir: string): Promise<string> {
  await mkdir(path.join(dir, 'etc'), { recursive: true });
  await writeFile(path.join(dir, 'etc', 'tool.conf'), 'setting = 1\n');
  await writeFile(path.join(dir, 'data'), randomBytes(64 * 1024));
  return dir;
}

beforeAll(async () => {
  open = await startRegistry();
  basic = await startRegistry({ auth: 'htpasswd' });
  proxy = await startProxy({ target: open.host });
  tree = await makeTree(path.join(await tmpDir('key-tree'), 'root'));
});
afterAll(cleanupAll);

describe('key', () => {
  it('a second snapshot with the same key captures nothing; another key captures; every tag must hold it', async () => {
    const ref = `${proxy.host}/key/ci:v1`;
    const first = await runAction({ root: tree, image: ref, key: 'setup-1' });
    expectOk(first);
    expect(first.outputs.skipped).toBe('false');
    expect((await rawManifest(`${open.host}/key/ci:v1`)).annotations?.[KEY_ANNOTATION]).toBe('setup-1');

    // Same key: nothing captured, nothing written to the registry, the summary says why.
    proxy.requests.length = 0;
    const summary = path.join(await tmpDir('summary'), 'summary.md');
    await writeFile(summary, '');
    const meta = path.join(path.dirname(summary), 'meta.json');
    const same = await runAction(
      { root: tree, image: ref, key: 'setup-1', 'metadata-file': meta },
      { env: { GITHUB_STEP_SUMMARY: summary } },
    );
    expectOk(same);
    expect(same.outputs.skipped).toBe('true');
    expect(same.outputs.digest).toBe(first.outputs.digest);
    expect(same.outputs.image).toBe(`${proxy.host}/key/ci@${first.outputs.digest}`);
    expect(same.outputs.uploaded).toBe('0');
    expect(same.outputs.tags).toBe('');
    expect(same.outputs.layers).toBe(first.outputs.layers);
    expect(writes(proxy)).toEqual([]);
    expect(await metadata(meta)).toMatchObject({
      operation: 'snapshot',
      digest: first.outputs.digest,
      key: 'setup-1',
      skipped: true,
      uploaded: 0,
      images: [`${proxy.host}/key/ci:v1`],
    });
    expect(await readFile(summary, 'utf8')).toMatch(
      new RegExp(
        `Snapshot skipped.*already holds ${first.outputs.digest} with key setup-1: nothing captured`,
        's',
      ),
    );
    expect(same.stdout).not.toMatch(/Layers \(compress and upload\)/);

    // Another key: captured and pushed; the same tree, so only the manifest differs.
    const other = await runAction({ root: tree, image: ref, key: 'setup-2' });
    expectOk(other);
    expect(other.outputs.skipped).toBe('false');
    expect(other.outputs.digest).not.toBe(first.outputs.digest);
    expect((await inspect(`${open.host}/key/ci:v1`)).Digest).toBe(other.outputs.digest);
    expect((await rawManifest(`${open.host}/key/ci:v1`)).annotations?.[KEY_ANNOTATION]).toBe('setup-2');

    // v1 has the key but v2 is missing: not up to date, so both are written.
    const both = await runAction({ root: tree, image: `${ref}\n${proxy.host}/key/ci:v2`, key: 'setup-2' });
    expectOk(both);
    expect(both.outputs.skipped).toBe('false');
    expect(both.outputs.tags).toBe('v1,v2');
    expect((await inspect(`${open.host}/key/ci:v2`)).Digest).toBe(both.outputs.digest);
    const again = await runAction({ root: tree, image: `${ref}\n${proxy.host}/key/ci:v2`, key: 'setup-2' });
    expectOk(again);
    expect(again.outputs.skipped).toBe('true');
  });

  it('with max-age too, the image must also be young enough', async () => {
    const aged = await makeTree(path.join(await tmpDir('aged'), 'root'));
    const old = new Date(Date.now() - 2 * 86_400_000);
    for (const p of ['etc/tool.conf', 'data', 'etc', '.']) await utimes(path.join(aged, p), old, old);
    const ref = `${open.host}/key/aged:v1`;
    expectOk(await runAction({ root: aged, image: ref, key: 'k' }));
    const young = await runAction({ root: aged, image: ref, key: 'k', 'max-age': '1d' });
    expectOk(young);
    expect(young.outputs.skipped).toBe('false');
    const old3d = await runAction({ root: aged, image: ref, key: 'k', 'max-age': '3d' });
    expectOk(old3d);
    expect(old3d.outputs.skipped).toBe('true');
    // Young enough, but made from something else.
    const otherKey = await runAction({ root: aged, image: ref, key: 'k2', 'max-age': '3d' });
    expectOk(otherKey);
    expect(otherKey.outputs.skipped).toBe('false');
  });

  it('a dry run with the key of the layout already at output writes nothing', async () => {
    const output = path.join(await tmpDir('layout'), 'out');
    const first = await runAction({ root: tree, 'dry-run': 'true', output, key: 'k1' });
    expectOk(first);
    const index = await readFile(path.join(output, 'index.json'), 'utf8');
    const same = await runAction({ root: tree, 'dry-run': 'true', output, key: 'k1' });
    expectOk(same);
    expect(same.outputs.skipped).toBe('true');
    expect(same.outputs.digest).toBe(first.outputs.digest);
    expect(same.outputs.output).toBe(output);
    expect(await readFile(path.join(output, 'index.json'), 'utf8')).toBe(index);
    expect((await readdir(path.dirname(output))).sort()).toEqual(['out']); // no staging left
    const other = await runAction({ root: tree, 'dry-run': 'true', output, key: 'k2' });
    expectOk(other);
    expect(other.outputs.skipped).toBe('false');
  });
});

describe('mode: lookup', () => {
  let digest: string;
  let created: string;
  const ref = () => `${proxy.host}/lookup/ci:v1`;

  beforeAll(async () => {
    const r = await runAction({ root: tree, image: `${open.host}/lookup/ci:v1`, key: 'abc' });
    expectOk(r);
    digest = r.outputs.digest;
    created = (await inspect(`${open.host}/lookup/ci:v1`)).Created;
  });

  it('hit when the key matches, miss when it does not, and when the tag is missing; writes nothing', async () => {
    proxy.requests.length = 0;
    const output = path.join(await tmpDir('lookup-out'), 'layout');
    const hit = await runAction({ mode: 'lookup', image: ref(), key: 'abc', output });
    expectOk(hit);
    expect(hit.outputs).toMatchObject({ hit: 'true', digest, key: 'abc' });
    expect(Date.parse(hit.outputs.created)).toBe(Date.parse(created));

    const miss = await runAction({ mode: 'lookup', image: ref(), key: 'abd', output });
    expectOk(miss);
    expect(miss.outputs).toMatchObject({ hit: 'false', digest, key: 'abc' });
    expect(miss.stdout).toContain('with another key (abc)');

    // No key: existence and max-age decide.
    expect((await runAction({ mode: 'lookup', image: ref() })).outputs.hit).toBe('true');
    expect((await runAction({ mode: 'lookup', image: ref(), 'max-age': '3650d' })).outputs.hit).toBe('true');
    const stale = await runAction({ mode: 'lookup', image: ref(), key: 'abc', 'max-age': '1s' });
    expectOk(stale);
    // created is the tree's newest mtime, set when the test started: older than a second by now.
    expect(stale.outputs.hit).toBe('false');

    const missing = await runAction({ mode: 'lookup', image: `${proxy.host}/lookup/ci:nope`, key: 'abc' });
    expectOk(missing);
    expect(missing.outputs).toEqual({ hit: 'false', digest: '', created: '', key: '' });
    const noRepo = await runAction({ mode: 'lookup', image: `${proxy.host}/lookup/none:v1` });
    expectOk(noRepo);
    expect(noRepo.outputs.hit).toBe('false');

    expect(writes(proxy)).toEqual([]);
    expect(existsSync(path.dirname(output)) && (await readdir(path.dirname(output)))).toEqual([]);
  });

  it('from the command line: lookup --image REF --key K', async () => {
    const r = await runCli(['lookup', '--image', ref(), '--key', 'abc']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('hit=true\n');
    expect(r.stdout).toContain(`digest=${digest}\n`);
  });

  it('the pre step records no baseline', async () => {
    const baseline = path.join(await tmpDir('lookup-pre'), 'baseline.gz');
    const pre = await runAction(
      {
        mode: 'lookup',
        image: ref(),
        key: 'abc',
        root: tree,
        baseline,
        'base-image': `${open.host}/lookup/ci:v1`,
      },
      { pre: true },
    );
    expectOk(pre);
    expect(pre.stdout).toContain('capture nothing: no baseline recorded');
    expect(existsSync(baseline)).toBe(false);
    expect(pre.state.baseline).toBeUndefined();
  });

  it('with credentials: right ones read the tag, wrong ones are an error', async () => {
    const target = `${basic.host}/lookup/auth:v1`;
    const creds = { username: 'tester', password: 'secret' };
    expectOk(await runAction({ root: tree, image: target, key: 'abc', ...creds }));
    const hit = await runAction({ mode: 'lookup', image: target, key: 'abc', ...creds });
    expectOk(hit);
    expect(hit.outputs.hit).toBe('true');
    const wrong = await runAction({
      mode: 'lookup',
      image: target,
      key: 'abc',
      username: 'tester',
      password: 'nope',
    });
    expect(wrong.code).toBe(1);
    expect(wrong.errors).toEqual([expect.stringMatching(/401 UNAUTHORIZED.*check the credentials/)]);
    expect(wrong.outputs.hit).toBeUndefined();
    const none = await runAction({ mode: 'lookup', image: target, key: 'abc' });
    expect(none.code).toBe(1);
    expect(none.errors).toEqual([expect.stringMatching(/401/)]);
  });

  it('an unreachable registry is an error, not a miss', async () => {
    const r = await runAction({
      mode: 'lookup',
      image: `127.0.0.1:${await freePort()}/lookup/ci:v1`,
      key: 'abc',
    });
    expect(r.code).toBe(1);
    expect(r.errors).toEqual([
      expect.stringMatching(/cannot reach 127\.0\.0\.1:\d+: the connection was refused/),
    ]);
    expect(r.outputs.hit).toBeUndefined();
  });
});

describe('pull --load', () => {
  let ref: string;
  const proof = randomBytes(8).toString('hex');

  beforeAll(async () => {
    // A system that runs: Debian, with a file only this snapshot has.
    const root = path.join(await tmpDir('load-root'), 'root');
    await check('cp', ['-a', await debianRootfs(), root]);
    await writeFile(path.join(root, 'etc', 'snapshot-proof'), `proof ${proof}\n`);
    ref = `${open.host}/load/debian:v1`;
    expectOk(await runAction({ root, image: ref, exclude: '/.complete' }));
  }, 600_000);

  for (const which of ['docker', 'podman'] as const) {
    it(`into ${which}: a run prints a file from the snapshot`, { timeout: 600_000 }, async () => {
      const runtime = which === 'docker' ? await startDocker() : await podman();
      // podman is taken only where no Docker daemon answers.
      const env =
        which === 'docker'
          ? runtime.env
          : { ...runtime.env, DOCKER_HOST: `unix://${await tmpDir('nodocker')}/sock` };
      const output = path.join(await tmpDir('load-out'), 'layout');
      const meta = path.join(await tmpDir('load-meta'), 'meta.json');
      const r = await runAction({ mode: 'pull', from: ref, load: 'true', 'metadata-file': meta }, { env });
      expectOk(r);
      expect(await metadata(meta)).toMatchObject({ output: null, loaded: { runtime: which, image: ref } });
      expect(r.outputs.loaded).toBe(ref);
      expect(r.outputs.output).toBeUndefined();
      expect(r.stdout).toMatch(new RegExp(`loaded .* into ${which} `));
      expect(existsSync(output)).toBe(false);
      const ran = await runtime.run(ref, ['cat', '/etc/snapshot-proof']);
      expect(ran.code, ran.stderr).toBe(0);
      expect(ran.stdout).toBe(`proof ${proof}\n`);
    });
  }

  it('from the command line, by digest, with a layout too', { timeout: 600_000 }, async () => {
    const docker = await startDocker();
    const digest = (await inspect(ref)).Digest;
    const output = path.join(await tmpDir('load-out'), 'layout');
    const r = await runCli(
      ['pull', '--from', `${open.host}/load/debian@${digest}`, '--load', '--output', output],
      {
        env: { PATH: process.env.PATH, ...docker.env },
      },
    );
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const name = `${open.host}/load/debian:sha256-${digest.slice(7)}`;
    expect(r.stdout).toContain(`loaded=${name}\n`);
    expect(r.stdout).toContain(`output=${output}\n`);
    expect(JSON.parse(await readFile(path.join(output, 'index.json'), 'utf8')).manifests[0].digest).toBe(
      digest,
    );
    const ran = await docker.run(name, ['cat', '/etc/snapshot-proof']);
    expect(ran.stdout).toBe(`proof ${proof}\n`);
  });

  it(
    'zstd layers into Docker 20.10: one line that says so, nothing loaded',
    { timeout: 600_000 },
    async () => {
      const docker = await startDocker();
      const zstdRef = `${open.host}/load/zstd:v1`;
      expectOk(await runAction({ root: tree, image: zstdRef, compression: 'zstd' }));
      const r = await runAction({ mode: 'pull', from: zstdRef, load: 'true' }, { env: docker.env });
      expect(r.code).toBe(1);
      expect(r.errors).toEqual([
        expect.stringMatching(
          /load: .*has zstd layers, which Docker 20\.10\.\S+ cannot load.*podman.*compression gzip/,
        ),
      ]);
      const images = await check('docker', ['images', '-q'], { env: { ...process.env, ...docker.env } });
      expect(images.stdout.trim()).toBe('');
    },
  );

  it('the README example runs as written', { timeout: 600_000 }, async () => {
    const docker = await startDocker();
    expectOk(await runAction({ mode: 'promote', from: ref, image: `${open.host}/team/ci-image:v1` }));
    const work = await tmpDir('readme-load');
    copyShippedAction(work);
    const script = (await readmeExample('sh', '--load'))
      .replace(/localhost:5000/g, open.host)
      // The test's dockerd has no bridge network.
      .replace('docker run --rm', 'docker run --rm --network=none');
    const r = await run('bash', ['-euo', 'pipefail', '-c', script], {
      cwd: work,
      env: { PATH: `${path.dirname(NODE24)}:${process.env.PATH}`, HOME: work, ...docker.env },
    });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain(`loaded=${open.host}/team/ci-image:v1\n`);
    expect(r.stdout).toMatch(/^PRETTY_NAME="Debian GNU\/Linux 12 \(bookworm\)"$/m);
  });

  it('with neither Docker nor podman: one line that says so', async () => {
    const bin = await tmpDir('empty-path');
    const r = await runAction({ mode: 'pull', from: ref, load: 'true' }, { env: { PATH: bin } });
    expect(r.code).toBe(1);
    expect(r.errors).toEqual([
      expect.stringMatching(
        /load: neither Docker nor podman answers here \(docker: not installed; podman: not installed\)/,
      ),
    ]);
  });
});

/** A fenced block of the README that follows `<!-- example: run by test/integration/lookup.test.ts -->`. */
async function readmeExample(lang: string, containing: string): Promise<string> {
  const lines = (await readFile('README.md', 'utf8')).split('\n');
  for (let i = 1; i < lines.length; i++) {
    if (lines[i] !== '```' + lang) continue;
    const end = lines.indexOf('```', i + 1);
    const text = lines.slice(i + 1, end).join('\n');
    if (
      lines[i - 1] === '<!-- example: run by test/integration/lookup.test.ts -->' &&
      text.includes(containing)
    )
      return text;
  }
  throw new Error(`no ${lang} example with ${containing} in README.md`);
}

describe('README examples', () => {
  it('the workflow: lookup misses, the snapshot with the key is pushed, then lookup hits and the snapshot skips', async () => {
    const ghcr = await startRegistry({
      auth: 'htpasswd',
      users: [{ user: 'octo', pass: 'ghs_lookup_token' }],
    });
    const job = Object.values(YAML.parse(await readmeExample('yaml', 'mode: lookup')).jobs)[0] as {
      steps: Array<{ id?: string; if?: string; uses?: string; run?: string; with?: Record<string, string> }>;
    };
    const ours = job.steps.filter((s) => s.uses?.startsWith('depot/snapshot-action@'));
    expect(ours.map((s) => s.with?.mode ?? 'snapshot')).toEqual(['lookup', 'snapshot']);
    expect(ours[1].if).toBe("steps.lookup.outputs.hit != 'true'");
    // The runner's expressions: hashFiles of the checkout, ghcr.io played by a local registry.
    const contexts = (hash: string): Record<string, string> => ({
      'github.repository': 'octo/repo',
      'github.actor': 'octo',
      'secrets.GITHUB_TOKEN': 'ghs_lookup_token',
      "hashFiles('setup.sh', 'package-lock.json')": hash,
    });
    const inputs = (step: (typeof ours)[number], hash: string) =>
      Object.fromEntries(
        Object.entries(step.with!).map(([k, v]) => [
          k,
          String(v)
            .replace(/\$\{\{ (.+?) \}\}/g, (_, expr: string) => contexts(hash)[expr] ?? `<${expr}?>`)
            .replace('ghcr.io', ghcr.host),
        ]),
      );
    const runJob = async (hash: string) => {
      const lookup = await runAction(inputs(ours[0], hash));
      expectOk(lookup);
      const snapshot =
        lookup.outputs.hit === 'true' ? null : await runAction({ ...inputs(ours[1], hash), root: tree });
      if (snapshot) expectOk(snapshot);
      return { lookup, snapshot };
    };
    const first = await runJob('hash-1');
    expect(first.lookup.outputs.hit).toBe('false');
    expect(first.snapshot?.outputs.skipped).toBe('false');
    const second = await runJob('hash-1');
    expect(second.lookup.outputs).toMatchObject({
      hit: 'true',
      digest: first.snapshot?.outputs.digest,
      key: 'hash-1',
    });
    expect(second.snapshot).toBeNull();
    // The snapshot step alone, as a job without the lookup would run it: skipped.
    const alone = await runAction({ ...inputs(ours[1], 'hash-1'), root: tree });
    expectOk(alone);
    expect(alone.outputs.skipped).toBe('true');
    const changed = await runJob('hash-2');
    expect(changed.lookup.outputs).toMatchObject({ hit: 'false', key: 'hash-1' });
    expect(changed.snapshot?.outputs.skipped).toBe('false');
  });
});
