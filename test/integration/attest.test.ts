// Attestations: the SBOM and the SLSA provenance of a snapshot, attached to the image as OCI 1.1
// referrers and found again from the registry by the referrers tag schema alone (Debian's
// docker-registry 2.8 has no referrers API), in a dry run's layout, and after a promote elsewhere.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PackageURL } from 'packageurl-js';
import { runAction, type ActionResult } from '../helpers/action.js';
import { cyclonedxErrors } from '../helpers/cyclonedx.js';
import { debianRootfs, inspect, unpack } from '../helpers/image.js';
import { startProxy } from '../helpers/proxy.js';
import { get, INDEX, referrersByTag } from '../helpers/referrers.js';
import { startRegistry, type Registry } from '../helpers/registry.js';
import { check, cleanupAll, tmpDir } from '../helpers/tools.js';

const CYCLONEDX = 'application/vnd.cyclonedx+json';
const IN_TOTO = 'application/vnd.in-toto+json';

const COMMIT = '0123456789abcdef0123456789abcdef01234567';
const SECRET = 'sk-live-attest-secret-0000000000';
const WORKFLOW_ENV = {
  GITHUB_SERVER_URL: 'https://github.com',
  GITHUB_REPOSITORY: 'acme/app',
  GITHUB_SHA: COMMIT,
  GITHUB_REF: 'refs/heads/main',
  GITHUB_WORKFLOW_REF: 'acme/app/.github/workflows/ci.yml@refs/heads/main',
  GITHUB_RUN_ID: '4242',
  GITHUB_RUN_ATTEMPT: '1',
  MY_API_TOKEN: SECRET,
};

let staging: Registry;
let production: Registry;
const PROD = { user: 'prod', pass: 'prod-secret-pass' };
let tree: string;
let home: string;
/** The dpkg packages the tree holds (name@version), read from its status file here. */
let dpkgPackages: string[];
let base: { ref: string; digest: string };

function expectOk(r: ActionResult): void {
  expect(r.errors, r.stdout).toEqual([]);
  expect(r.code).toBe(0);
}

/** The SBOM is valid CycloneDX and lists every dpkg package of the tree by its purl. */
function checkSbom(sbom: Record<string, unknown>): void {
  expect(cyclonedxErrors(sbom)).toEqual([]);
  const purls = (sbom.components as Array<{ purl?: string }>)
    .map((c) => c.purl)
    .filter((p): p is string => !!p)
    .map((p) => PackageURL.fromString(p));
  const listed = purls.filter((p) => p.type === 'deb').map((p) => `${p.name}@${p.version}`);
  expect(listed.sort()).toEqual([...dpkgPackages].sort());
  expect(purls.find((p) => p.name === 'dpkg')?.namespace).toBe('debian');
}

beforeAll(async () => {
  staging = await startRegistry();
  production = await startRegistry({ auth: 'htpasswd', users: [PROD] });
  home = await tmpDir('home');
  await mkdir(path.join(home, '.docker'));
  const auth = Buffer.from(`${PROD.user}:${PROD.pass}`).toString('base64');
  await writeFile(
    path.join(home, '.docker', 'config.json'),
    JSON.stringify({ auths: { [production.host]: { auth } } }),
  );

  // A small tree holding a real Debian package database: the SBOM's dpkg packages.
  const debian = await debianRootfs();
  tree = path.join(await tmpDir('tree'), 'root');
  await mkdir(path.join(tree, 'var', 'lib', 'dpkg'), { recursive: true });
  await mkdir(path.join(tree, 'etc'), { recursive: true });
  await copyFile(
    path.join(debian, 'var', 'lib', 'dpkg', 'status'),
    path.join(tree, 'var', 'lib', 'dpkg', 'status'),
  );
  await copyFile(path.join(debian, 'usr', 'lib', 'os-release'), path.join(tree, 'etc', 'os-release'));
  await writeFile(path.join(tree, 'etc', 'hello.txt'), 'hello\n');
  const status = await readFile(path.join(tree, 'var', 'lib', 'dpkg', 'status'), 'utf8');
  dpkgPackages = status
    .split('\n\n')
    .filter((s) => /^Status: install ok installed$/m.test(s))
    .map((s) => `${/^Package: (.+)$/m.exec(s)![1]}@${/^Version: (.+)$/m.exec(s)![1]}`);
  expect(dpkgPackages.length).toBeGreaterThan(50);

  // The base image: a tree of its own, pushed without attestations.
  const baseTree = path.join(await tmpDir('base'), 'root');
  await mkdir(baseTree, { recursive: true });
  await writeFile(path.join(baseTree, 'base.txt'), 'base\n');
  const pushed = await runAction({
    root: baseTree,
    image: `${staging.host}/base/os:1`,
    sbom: 'false',
    provenance: 'false',
  });
  expectOk(pushed);
  base = { ref: `${staging.host}/base/os:1@${pushed.outputs.digest}`, digest: pushed.outputs.digest };
  expect(await referrersByTag(staging.host, 'base/os', base.digest)).toEqual([]);
}, 300_000);
afterAll(cleanupAll);

describe('attestations', () => {
  it('attaches the SBOM and the provenance, found by the referrers tag schema; promote carries them to another registry', async () => {
    const meta = path.join(await tmpDir('meta'), 'snapshot.json');
    const r = await runAction(
      { root: tree, image: `${staging.host}/ci/app:v1`, 'base-image': base.ref, 'metadata-file': meta },
      { env: { HOME: home, ...WORKFLOW_ENV } },
    );
    expectOk(r);
    const digest = r.outputs.digest;
    expect((await inspect(`${staging.host}/ci/app:v1`)).Digest).toBe(digest);
    // This registry has no referrers API: the tag schema is what holds them.
    expect((await get(staging.host, `/v2/ci/app/referrers/${digest}`, INDEX)).status).toBe(404);

    const found = await referrersByTag(staging.host, 'ci/app', digest);
    expect(found.map((f) => f.artifactType).sort()).toEqual([CYCLONEDX, IN_TOTO]);
    for (const f of found) {
      expect(f.manifest.subject.digest).toBe(digest);
      expect(f.manifest.artifactType).toBe(f.artifactType);
      expect(f.manifest.layers[0].mediaType).toBe(f.artifactType);
    }
    const sbom = found.find((f) => f.artifactType === CYCLONEDX)!;
    const provenance = found.find((f) => f.artifactType === IN_TOTO)!;
    expect(r.outputs['sbom-digest']).toBe(sbom.digest);
    expect(r.outputs['provenance-digest']).toBe(provenance.digest);
    checkSbom(sbom.document);

    const statement = provenance.document as {
      subject: Array<{ digest: { sha256: string } }>;
      predicate: {
        buildDefinition: { resolvedDependencies: Array<{ uri: string; digest: Record<string, string> }> };
      };
    };
    expect(statement.subject[0].digest.sha256).toBe(digest.slice('sha256:'.length));
    const deps = statement.predicate.buildDefinition.resolvedDependencies;
    expect(deps).toContainEqual({
      uri: 'git+https://github.com/acme/app@refs/heads/main',
      digest: { gitCommit: COMMIT },
    });
    expect(deps.some((d) => d.digest.sha256 === base.digest.slice('sha256:'.length))).toBe(true);
    expect(JSON.stringify(provenance.document)).not.toContain(SECRET);
    expect(r.stdout).not.toContain(SECRET);

    const metadata = JSON.parse(await readFile(meta, 'utf8')) as {
      referrers: Array<{ digest: string; artifactType: string }>;
    };
    expect(metadata.referrers).toEqual([
      { digest: sbom.digest, artifactType: CYCLONEDX },
      { digest: provenance.digest, artifactType: IN_TOTO },
    ]);

    // Promoted to another repository of another registry: the same artifacts, found the same way there.
    const promoted = await runAction(
      { mode: 'promote', from: `${staging.host}/ci/app@${digest}`, image: `${production.host}/prod/app:v1` },
      { env: { HOME: home } },
    );
    expectOk(promoted);
    const there = await referrersByTag(production.host, 'prod/app', digest, PROD);
    expect(there.map((f) => f.digest).sort()).toEqual([sbom.digest, provenance.digest].sort());
    for (const f of there) expect(f.manifest.subject.digest).toBe(digest);
    expect(promoted.outputs['sbom-digest']).toBe(sbom.digest);
    expect(promoted.outputs['provenance-digest']).toBe(provenance.digest);

    // Pulled into a layout: listed in its index.json beside the image's tag.
    const out = path.join(await tmpDir('pulled'), 'layout');
    const pulled = await runAction({ mode: 'pull', from: `${staging.host}/ci/app:v1`, output: out });
    expectOk(pulled);
    const index = JSON.parse(await readFile(path.join(out, 'index.json'), 'utf8')) as {
      manifests: Array<{ digest: string; artifactType?: string }>;
    };
    expect(index.manifests.filter((d) => d.artifactType).map((d) => d.digest)).toEqual(
      expect.arrayContaining([sbom.digest, provenance.digest]),
    );
    expect(pulled.outputs['sbom-digest']).toBe(sbom.digest);
    // The layout's one image is still what oci:DIR without a tag names, its artifacts beside it.
    const again = await runAction({
      mode: 'promote',
      from: `oci:${out}`,
      image: `${staging.host}/ci/again:v1`,
    });
    expectOk(again);
    expect(again.outputs.digest).toBe(digest);
    expect(again.outputs['provenance-digest']).toBe(provenance.digest);
  }, 300_000);

  it('attaches no SBOM with sbom: false; a second run of the same image adds its provenance beside the first', async () => {
    const inputs = { root: tree, image: `${staging.host}/ci/nosbom:v1`, sbom: 'false' };
    const r = await runAction(inputs, { env: WORKFLOW_ENV });
    expectOk(r);
    expect(r.outputs['sbom-digest']).toBe('');
    const found = await referrersByTag(staging.host, 'ci/nosbom', r.outputs.digest);
    expect(found.map((f) => f.artifactType)).toEqual([IN_TOTO]);
    expect(found[0].digest).toBe(r.outputs['provenance-digest']);

    const again = await runAction(inputs, { env: WORKFLOW_ENV });
    expectOk(again);
    expect(again.outputs.digest).toBe(r.outputs.digest);
    expect(again.outputs.uploaded).toBe('0'); // the image was there; its new provenance is not the image
    const after = await referrersByTag(staging.host, 'ci/nosbom', r.outputs.digest);
    // Another run's provenance (other times) is added beside the first, never in its place.
    expect(after.map((f) => f.digest)).toContain(found[0].digest);
    expect(new Set(after.map((f) => f.digest)).size).toBe(after.length);
  }, 300_000);

  it('writes them into a dry run layout, which skopeo and umoci still read by its tag, and promote takes them from there', async () => {
    const out = path.join(await tmpDir('layout'), 'out');
    const r = await runAction({ root: tree, 'dry-run': 'true', output: out }, { env: WORKFLOW_ENV });
    expectOk(r);
    const digest = r.outputs.digest;
    const index = JSON.parse(await readFile(path.join(out, 'index.json'), 'utf8')) as {
      manifests: Array<{ digest: string; artifactType?: string; annotations?: Record<string, string> }>;
    };
    const tagged = index.manifests.filter((d) => d.annotations?.['org.opencontainers.image.ref.name']);
    expect(tagged.map((d) => d.digest)).toEqual([digest]);
    const artifacts = index.manifests.filter((d) => d.artifactType);
    expect(artifacts.map((d) => d.artifactType).sort()).toEqual([CYCLONEDX, IN_TOTO]);
    expect(artifacts.map((d) => d.digest).sort()).toEqual(
      [r.outputs['sbom-digest'], r.outputs['provenance-digest']].sort(),
    );
    for (const a of artifacts) {
      const m = JSON.parse(await readFile(path.join(out, 'blobs', 'sha256', a.digest.slice(7)), 'utf8'));
      expect(m.subject.digest).toBe(digest);
      if (a.artifactType === CYCLONEDX) {
        checkSbom(
          JSON.parse(await readFile(path.join(out, 'blobs', 'sha256', m.layers[0].digest.slice(7)), 'utf8')),
        );
      }
    }
    const inspected = JSON.parse((await check('skopeo', ['inspect', `oci:${out}:latest`])).stdout) as {
      Digest: string;
    };
    expect(inspected.Digest).toBe(digest);
    expect(await readFile(path.join(await unpack(out, 'latest'), 'etc', 'hello.txt'), 'utf8')).toBe(
      'hello\n',
    );

    const promoted = await runAction({
      mode: 'promote',
      from: `oci:${out}`,
      image: `${staging.host}/from-layout/app:v1`,
    });
    expectOk(promoted);
    expect(promoted.outputs.digest).toBe(digest);
    const found = await referrersByTag(staging.host, 'from-layout/app', digest);
    expect(found.map((f) => f.digest).sort()).toEqual(artifacts.map((d) => d.digest).sort());
  }, 300_000);

  it('pushes the image when the registry refuses the artifacts, with one warning for each', async () => {
    // A registry that takes no manifest with a subject (an older one): every PUT by digest refused.
    const proxy = await startProxy({
      target: staging.host,
      intercept: (req, res) => {
        if (req.method !== 'PUT' || !/\/manifests\/sha256:/.test(req.url ?? '')) return false;
        res.writeHead(400, { 'Content-Type': 'application/json' });
        res.end(
          JSON.stringify({
            errors: [
              { code: 'MANIFEST_INVALID', message: 'manifest invalid', detail: 'unknown field "subject"' },
            ],
          }),
        );
        return true;
      },
    });
    const r = await runAction({ root: tree, image: `${proxy.host}/ci/refused:v1` }, { env: WORKFLOW_ENV });
    expectOk(r);
    expect((await inspect(`${staging.host}/ci/refused:v1`)).Digest).toBe(r.outputs.digest);
    const warnings = r.stdout
      .split('\n')
      .filter((l) => l.startsWith('::warning') && l.includes('not attached'));
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatch(
      /the SBOM was not attached to .*ci\/refused@sha256:[0-9a-f]{64}: .*manifest invalid/i,
    );
    expect(warnings[1]).toMatch(/the provenance was not attached/);
    expect(r.outputs['sbom-digest']).toBe('');
    expect(r.outputs['provenance-digest']).toBe('');
    expect(await referrersByTag(staging.host, 'ci/refused', r.outputs.digest)).toEqual([]);
  }, 300_000);
});
