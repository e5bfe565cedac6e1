import { describe, expect, it } from 'vitest';
import {
  format,
  groupTargets,
  parseReference,
  parseTargets,
  BadReferenceError,
} from '../../src/registry/reference.js';

const DIGEST = 'sha256:' + 'ab'.repeat(32);

describe('parseReference', () => {
  it.each([
    ['ubuntu', 'docker.io', 'library/ubuntu', undefined],
    ['ubuntu:22.04', 'docker.io', 'library/ubuntu', '22.04'],
    ['user/app', 'docker.io', 'user/app', undefined],
    ['docker.io/ubuntu', 'docker.io', 'library/ubuntu', undefined],
    ['index.docker.io/user/app:v1', 'docker.io', 'user/app', 'v1'],
    ['ghcr.io/org/team/app:sha-1234', 'ghcr.io', 'org/team/app', 'sha-1234'],
    ['127.0.0.1:5000/app:t', '127.0.0.1:5000', 'app', 't'],
    ['localhost/app', 'localhost', 'app', undefined],
    ['localhost:5000/a/b', 'localhost:5000', 'a/b', undefined],
    ['[::1]:5000/app:dev', '[::1]:5000', 'app', 'dev'],
    ['abc123.registry.depot.dev/my-ci-image:latest', 'abc123.registry.depot.dev', 'my-ci-image', 'latest'],
    ['  ghcr.io/o/a__b.c-d---e:_x  ', 'ghcr.io', 'o/a__b.c-d---e', '_x'],
  ])('%s', (input, registry, repository, tag) => {
    expect(parseReference(input)).toEqual({ registry, repository, tag, digest: undefined });
  });

  it('keeps a digest, with or without a tag', () => {
    expect(parseReference(`ghcr.io/o/a:t@${DIGEST}`)).toEqual({
      registry: 'ghcr.io',
      repository: 'o/a',
      tag: 't',
      digest: DIGEST,
    });
    expect(parseReference(`ghcr.io/o/a@${DIGEST}`).digest).toBe(DIGEST);
  });

  it('accepts a 128-character tag', () => {
    expect(parseReference(`app:${'t'.repeat(128)}`).tag).toHaveLength(128);
  });

  it.each([
    ['', /empty/],
    ['   ', /empty/],
    ['Ubuntu', /lowercase/],
    ['ghcr.io/Org/app', /lowercase/],
    ['app:bad$tag', /tag/],
    ['app:.dot', /tag/],
    ['app:-dash', /tag/],
    [`app:${'t'.repeat(129)}`, /tag/],
    ['app:', /tag/],
    ['ghcr.io/', /repository name is missing/],
    ['ghcr.io/o//a', /component/],
    ['ghcr.io/o/-a', /component/],
    ['ghcr.io/o/a@sha256:short', /digest/],
    ['bad_host.io/app', /registry host/],
  ])('rejects %j', (input, why) => {
    expect(() => parseReference(input)).toThrow(BadReferenceError);
    expect(() => parseReference(input)).toThrow(why);
  });
});

describe('parseTargets', () => {
  it('defaults the tag to latest', () => {
    expect(parseTargets(['ubuntu']).map(format)).toEqual(['docker.io/library/ubuntu:latest']);
  });

  it('accepts several tags of one repository, however the registry is spelled', () => {
    const refs = parseTargets(['ubuntu:a', 'docker.io/library/ubuntu:b', 'index.docker.io/library/ubuntu']);
    expect(refs.map((r) => r.tag)).toEqual(['a', 'b', 'latest']);
  });

  it('rejects a digest', () => {
    expect(() => parseTargets([`ghcr.io/o/a@${DIGEST}`])).toThrow(/digest/);
  });

  it('takes several repositories and registries, a reference given twice once', () => {
    const refs = parseTargets(['ghcr.io/o/a:1', 'quay.io/o/a:1', 'ghcr.io/o/b:1', 'ghcr.io/o/a:1']);
    expect(refs.map(format)).toEqual(['ghcr.io/o/a:1', 'quay.io/o/a:1', 'ghcr.io/o/b:1']);
  });
});

describe('groupTargets', () => {
  it('groups by registry, then repository, in the order first given', () => {
    const groups = groupTargets(
      parseTargets([
        'ghcr.io/o/a:1',
        '127.0.0.1:5001/x:v1',
        'ghcr.io/o/b:1',
        'ghcr.io/o/a:2',
        '127.0.0.1:5001/x:v2',
        'localhost:5001/x:v3',
      ]),
    );
    expect(
      groups.map((g) => ({
        registry: g.registry,
        targets: g.targets.map(format),
        repositories: g.repositories.map((r) => [r.name, r.targets.map((t) => t.tag)]),
      })),
    ).toEqual([
      {
        registry: 'ghcr.io',
        targets: ['ghcr.io/o/a:1', 'ghcr.io/o/b:1', 'ghcr.io/o/a:2'],
        repositories: [
          ['ghcr.io/o/a', ['1', '2']],
          ['ghcr.io/o/b', ['1']],
        ],
      },
      {
        registry: '127.0.0.1:5001',
        targets: ['127.0.0.1:5001/x:v1', '127.0.0.1:5001/x:v2'],
        repositories: [['127.0.0.1:5001/x', ['v1', 'v2']]],
      },
      // Another spelling of a host is another registry: its blobs are not the first one's.
      {
        registry: 'localhost:5001',
        targets: ['localhost:5001/x:v3'],
        repositories: [['localhost:5001/x', ['v3']]],
      },
    ]);
  });
});
