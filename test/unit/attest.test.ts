import { createHash } from 'node:crypto';
import { PackageURL } from 'packageurl-js';
import { describe, expect, it } from 'vitest';
import { artifactFor, ArtifactType, emptyConfig } from '../../src/attest/artifact.js';
import { slsaProvenance } from '../../src/attest/provenance.js';
import { cyclonedxSbom } from '../../src/attest/sbom.js';
import { MediaType } from '../../src/content/oci.js';
import type { Inventory } from '../../src/inventory/inventory.js';
import { cyclonedxErrors } from '../helpers/cyclonedx.js';

const digestOf = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;
const IMAGE = {
  repository: 'registry.example.com/ci/runner',
  digest: digestOf('image'),
  created: '2024-05-01T10:00:00Z',
};

const INVENTORY: Inventory = {
  packages: [
    {
      ecosystem: 'deb',
      name: 'jq',
      version: '1.6-2.1',
      arch: 'amd64',
      location: 'var/lib/dpkg/status',
      purl: 'pkg:deb/debian/jq@1.6-2.1?arch=amd64',
    },
    {
      ecosystem: 'npm',
      name: 'typescript',
      version: '5.9.3',
      location: 'usr/lib/node_modules/typescript/package.json',
      purl: 'pkg:npm/typescript@5.9.3',
    },
    // The same package installed twice: two components.
    {
      ecosystem: 'npm',
      name: 'typescript',
      version: '5.9.3',
      location: 'home/runner/app/node_modules/typescript/package.json',
      purl: 'pkg:npm/typescript@5.9.3',
    },
    {
      ecosystem: 'pypi',
      name: 'requests',
      version: '2.28.1',
      location: 'usr/lib/python3/dist-packages/requests-2.28.1.dist-info/METADATA',
      purl: 'pkg:pypi/requests@2.28.1',
    },
  ],
  path: ['/usr/bin'],
  os: { id: 'debian', versionId: '12', prettyName: 'Debian GNU/Linux 12 (bookworm)' },
};

interface Bom {
  bomFormat: string;
  specVersion: string;
  serialNumber?: string;
  metadata: { timestamp: string; component: { type: string; purl: string } };
  components: Array<{ type: string; name: string; purl?: string; version?: string }>;
}

describe('the CycloneDX SBOM', () => {
  it('is valid CycloneDX 1.6 that lists every package by purl, about the image as a container', () => {
    const bom = JSON.parse(cyclonedxSbom(INVENTORY, IMAGE).toString()) as Bom;
    expect(cyclonedxErrors(bom)).toEqual([]);
    expect(bom.bomFormat).toBe('CycloneDX');
    expect(bom.specVersion).toBe('1.6');
    const purls = bom.components.map((c) => c.purl).filter(Boolean);
    expect(purls.sort()).toEqual(
      [
        'pkg:deb/debian/jq@1.6-2.1?arch=amd64',
        'pkg:npm/typescript@5.9.3',
        'pkg:npm/typescript@5.9.3',
        'pkg:pypi/requests@2.28.1',
      ].sort(),
    );
    expect(bom.components.find((c) => c.type === 'operating-system')).toMatchObject({
      name: 'debian',
      version: '12',
    });
    expect(bom.metadata.timestamp).toBe('2024-05-01T10:00:00.000Z');
    expect(bom.metadata.component.type).toBe('container');
    const purl = PackageURL.fromString(bom.metadata.component.purl);
    expect([purl.type, purl.name, purl.version, purl.qualifiers]).toEqual([
      'oci',
      'runner',
      IMAGE.digest,
      { repository_url: 'registry.example.com/ci/runner' },
    ]);
  });

  it('is the same bytes for the same image, whatever order the packages come in', () => {
    const a = cyclonedxSbom(INVENTORY, IMAGE);
    const b = cyclonedxSbom({ ...INVENTORY, packages: [...INVENTORY.packages].reverse() }, IMAGE);
    expect(b.equals(a)).toBe(true);
    const other = JSON.parse(
      cyclonedxSbom(INVENTORY, { ...IMAGE, digest: digestOf('other') }).toString(),
    ) as Bom;
    expect(other.serialNumber).toMatch(
      /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
    expect(other.serialNumber).not.toBe((JSON.parse(a.toString()) as Bom).serialNumber);
  });

  it('is checked by a schema that refuses what is not CycloneDX', () => {
    const bom = JSON.parse(cyclonedxSbom(INVENTORY, IMAGE).toString()) as Bom;
    expect(cyclonedxErrors({ ...bom, components: [{ name: 'x' }] }).length).toBeGreaterThan(0);
  });
});

describe('the SLSA provenance', () => {
  const base = { name: 'docker.io/library/debian:bookworm', digest: digestOf('base') };
  const github = {
    GITHUB_SERVER_URL: 'https://github.com',
    GITHUB_REPOSITORY: 'acme/app',
    GITHUB_REPOSITORY_ID: '123',
    GITHUB_REPOSITORY_OWNER_ID: '456',
    GITHUB_SHA: 'a'.repeat(40),
    GITHUB_REF: 'refs/heads/main',
    GITHUB_WORKFLOW_REF: 'acme/app/.github/workflows/ci.yml@refs/heads/main',
    GITHUB_EVENT_NAME: 'push',
    GITHUB_RUN_ID: '789',
    GITHUB_RUN_ATTEMPT: '2',
    GITHUB_ACTION_REPOSITORY: 'depot/snapshot-action',
    GITHUB_ACTION_REF: 'v1',
  };
  const times = { startedOn: '2024-05-01T10:00:00Z', finishedOn: '2024-05-01T10:05:00Z' };

  it('names the workflow run, the commit and the base image by digest, and no other environment', () => {
    const secrets = {
      GITHUB_TOKEN: 'ghs_secretgithubtoken000000000000000000',
      DEPOT_TOKEN: 'depot-secret-token-value',
      MY_API_KEY: 'sk-live-0123456789abcdef',
      ACTIONS_RUNTIME_TOKEN: 'runtime-secret-value',
    };
    const bytes = slsaProvenance({
      ...IMAGE,
      base,
      ...times,
      env: { ...github, ...secrets, HOME: '/home/runner-home' },
    });
    const text = bytes.toString();
    for (const value of [...Object.values(secrets), '/home/runner-home']) expect(text).not.toContain(value);
    const s = JSON.parse(text);
    expect(s._type).toBe('https://in-toto.io/Statement/v1');
    expect(s.predicateType).toBe('https://slsa.dev/provenance/v1');
    expect(s.subject).toEqual([{ name: IMAGE.repository, digest: { sha256: IMAGE.digest.slice(7) } }]);
    const def = s.predicate.buildDefinition;
    expect(def.externalParameters.workflow).toEqual({
      ref: 'refs/heads/main',
      repository: 'https://github.com/acme/app',
      path: '.github/workflows/ci.yml',
    });
    expect(def.resolvedDependencies).toEqual([
      { uri: 'git+https://github.com/acme/app@refs/heads/main', digest: { gitCommit: 'a'.repeat(40) } },
      {
        uri: new PackageURL('oci', undefined, 'debian', base.digest, {
          repository_url: 'docker.io/library/debian',
        }).toString(),
        name: base.name,
        digest: { sha256: base.digest.slice(7) },
      },
    ]);
    expect(s.predicate.runDetails.builder.id).toBe('https://github.com/depot/snapshot-action@v1');
    expect(s.predicate.runDetails.metadata).toEqual({
      invocationId: 'https://github.com/acme/app/actions/runs/789/attempts/2',
      ...times,
    });
  });

  it('outside Actions, still states the image, its base and the times, and says no workflow was found', () => {
    const s = JSON.parse(slsaProvenance({ ...IMAGE, base, ...times, env: { HOME: '/root' } }).toString());
    expect(s.subject[0].digest.sha256).toBe(IMAGE.digest.slice(7));
    expect(s.predicate.buildDefinition.resolvedDependencies).toEqual([
      expect.objectContaining({ digest: { sha256: base.digest.slice(7) } }),
    ]);
    expect(s.predicate.buildDefinition.internalParameters.github.note).toMatch(/not run by GitHub Actions/);
    expect(s.predicate.runDetails.metadata).toEqual(times);
  });
});

describe('the artifact manifest', () => {
  it('is an OCI 1.1 artifact: empty config, the document as its one layer, the image as its subject', () => {
    const subject = {
      mediaType: MediaType.manifest,
      digest: IMAGE.digest,
      size: 1234,
      annotations: { a: 'b' },
    };
    const doc = Buffer.from('{"bomFormat":"CycloneDX"}');
    const a = artifactFor(
      subject,
      { kind: 'SBOM', artifactType: ArtifactType.cyclonedx, bytes: doc },
      IMAGE.created,
    );
    const m = JSON.parse(a.manifest.bytes.toString());
    expect(m).toEqual({
      schemaVersion: 2,
      mediaType: MediaType.manifest,
      artifactType: 'application/vnd.cyclonedx+json',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: digestOf('{}'), size: 2 },
      layers: [
        { mediaType: 'application/vnd.cyclonedx+json', digest: digestOf(doc.toString()), size: doc.length },
      ],
      subject: { mediaType: MediaType.manifest, digest: IMAGE.digest, size: 1234 },
      annotations: { 'org.opencontainers.image.created': IMAGE.created },
    });
    expect(emptyConfig().bytes.toString()).toBe('{}');
    expect(a.blobs.map((b) => b.descriptor.digest)).toEqual([digestOf('{}'), digestOf(doc.toString())]);
    expect(a.descriptor).toEqual({
      mediaType: MediaType.manifest,
      digest: digestOf(a.manifest.bytes.toString()),
      size: a.manifest.bytes.length,
      artifactType: 'application/vnd.cyclonedx+json',
      annotations: { 'org.opencontainers.image.created': IMAGE.created },
    });
  });
});
