import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { Repository } from '../../src/registry/repository.js';
import { isLoopback, parseChallenge, RegistryClient } from '../../src/registry/client.js';
import { describeFailure, RegistryError } from '../../src/registry/errors.js';
import { putManifest } from '../../src/registry/manifests.js';
import { backoff, limitsFromEnv } from '../../src/registry/retry.js';
import type { Transport } from '../../src/registry/transport.js';

describe('parseChallenge', () => {
  it('reads a Bearer challenge with realm, service and scope', () => {
    const h =
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull,push"';
    expect(parseChallenge(h)).toEqual({
      scheme: 'bearer',
      realm: 'https://auth.docker.io/token',
      service: 'registry.docker.io',
    });
  });

  it('is case-insensitive on scheme and parameter names; service is optional', () => {
    expect(parseChallenge('bearer Realm="https://r/t"')).toEqual({
      scheme: 'bearer',
      realm: 'https://r/t',
      service: undefined,
    });
  });

  it('reads Basic', () => {
    expect(parseChallenge('Basic realm="Registry Realm"')).toEqual({ scheme: 'basic' });
    expect(parseChallenge('BASIC')).toEqual({ scheme: 'basic' });
  });

  it.each([
    null,
    '',
    'garbage',
    'Bearer service="x"',
    'Digest realm="x", nonce="y"',
    'Bearer realm=unquoted',
  ])('gives null for %j', (h) => {
    expect(parseChallenge(h)).toBeNull();
  });
});

describe('isLoopback', () => {
  it.each(['localhost', '127.0.0.1', '127.255.0.9', '::1', '[::1]'])('%s is loopback', (h) =>
    expect(isLoopback(h)).toBe(true),
  );
  it.each([
    '128.0.0.1',
    '10.0.0.1',
    '0.0.0.0',
    'localhost.example.com',
    'example.com',
    '127.0.0.1.nip.io',
    '::2',
  ])('%s is not', (h) => expect(isLoopback(h)).toBe(false));
});

describe('describeFailure', () => {
  const oneLine = (e: RegistryError) => {
    expect(e).toBeInstanceOf(RegistryError);
    expect(e.message).not.toMatch(/[\r\n]/);
    return e.message;
  };

  it('uses the OCI error code and message, with a hint', () => {
    const body = JSON.stringify({
      errors: [{ code: 'DENIED', message: 'requested access\nto the resource is denied', detail: null }],
    });
    const e = describeFailure('push of layer sha256:abc', 403, body);
    expect(oneLine(e)).toBe(
      'push of layer sha256:abc failed: 403 DENIED: requested access to the resource is denied (check that these credentials may push to this repository)',
    );
    expect([e.status, e.code]).toEqual([403, 'DENIED']);
  });

  it('an unknown code has no hint; a code without message is fine', () => {
    expect(oneLine(describeFailure('x', 400, '{"errors":[{"code":"WEIRD"}]}'))).toBe('x failed: 400 WEIRD');
  });

  it('an HTML page is named, not quoted', () => {
    const e = describeFailure('upload', 502, '\n  <html>\n<body><h1>502 Bad Gateway</h1></body>\n</html>');
    expect(oneLine(e)).toBe('upload failed: HTTP 502; the registry answered an HTML page');
    expect(e.code).toBeUndefined();
  });

  it('garbage is quoted on one line and cut at 120 characters', () => {
    expect(oneLine(describeFailure('x', 500, 'oops\r\n\tsomething   broke\n'))).toBe(
      'x failed: HTTP 500; the registry answered "oops something broke"',
    );
    const long = oneLine(describeFailure('x', 401, 'a\n'.repeat(500)));
    expect(long).toBe(
      `x failed: HTTP 401 (check the credentials); the registry answered "${'a '.repeat(60).slice(0, 120)}"`,
    );
  });

  it('JSON without errors is treated as garbage', () => {
    expect(oneLine(describeFailure('x', 403, '{"errors":[]}'))).toBe(
      'x failed: HTTP 403 (access denied for these credentials); the registry answered "{"errors":[]}"',
    );
    expect(oneLine(describeFailure('x', 500, 'null'))).toBe(
      'x failed: HTTP 500; the registry answered "null"',
    );
  });

  it('a web page where a registry should be asks whether this is a registry', () => {
    expect(oneLine(describeFailure('x', 404, '<!DOCTYPE html><html></html>'))).toBe(
      'x failed: HTTP 404 (not found); the registry answered an HTML page (is this a registry? check the host name and port)',
    );
    expect(
      oneLine(describeFailure('x', 413, '<html><title>413 Request Entity Too Large</title></html>')),
    ).toBe(
      'x failed: HTTP 413 (too large for the registry or a proxy in front of it); the registry answered an HTML page',
    );
  });

  it('a string detail says why; other details and non-string fields are left out', () => {
    const tooBig = JSON.stringify({
      errors: [
        { code: 'MANIFEST_INVALID', message: 'manifest invalid', detail: 'http: request body too large' },
      ],
    });
    expect(oneLine(describeFailure('tagging a:b', 400, tooBig))).toMatch(
      /^tagging a:b failed: 400 MANIFEST_INVALID: manifest invalid: http: request body too large \(.*larger layer-size/,
    );
    const odd = JSON.stringify({
      errors: [{ code: 'DENIED', message: 42, detail: [{ Type: 'repository' }] }],
    });
    expect(oneLine(describeFailure('x', 403, odd))).toBe(
      'x failed: 403 DENIED (check that these credentials may push to this repository)',
    );
    expect(oneLine(describeFailure('x', 400, '{"errors":"nope"}'))).toBe(
      'x failed: HTTP 400; the registry answered "{"errors":"nope"}"',
    );
  });

  it('an empty body', () => {
    expect(oneLine(describeFailure('x', 404, ''))).toBe(
      'x failed: HTTP 404 (not found); the registry answered no body',
    );
  });
});

describe('limitsFromEnv', () => {
  it('reads seconds, 0 turning a limit off, with defaults of 30 s and 2 h', () => {
    expect(limitsFromEnv({})).toEqual({ stallMs: 30_000, deadlineMs: 7_200_000 });
    expect(limitsFromEnv({ SNAPSHOT_STALL_SECONDS: '2.5', SNAPSHOT_PUSH_TIMEOUT_SECONDS: '0' })).toEqual({
      stallMs: 2500,
      deadlineMs: 0,
    });
  });

  it.each(['abc', '-1', '10s', '1e3'])('refuses %j with one line naming the variable', (value) => {
    expect(() => limitsFromEnv({ SNAPSHOT_STALL_SECONDS: value })).toThrow(
      new RegistryError(
        `SNAPSHOT_STALL_SECONDS must be a number of seconds (0 for no stall detection), not "${value}"`,
      ),
    );
  });
});

describe('backoff', () => {
  it('waits 0.5, 1, 2, 4 s (±20 %), at most the policy maximum', () => {
    for (const [attempt, ms] of [
      [1, 500],
      [2, 1000],
      [3, 2000],
      [4, 4000],
    ]) {
      for (let i = 0; i < 50; i++) {
        const wait = backoff(attempt);
        expect(wait).toBeGreaterThanOrEqual(ms * 0.8);
        expect(wait).toBeLessThanOrEqual(ms * 1.2);
      }
    }
    expect(backoff(10, { attempts: 5, baseDelayMs: 500, maxDelayMs: 1000 })).toBeLessThanOrEqual(1200);
  });
});

describe('putManifest', () => {
  const bytes = Buffer.from('{"schemaVersion":2}');
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

  /** A registry answering the PUT with `put`, and a read-back HEAD with `head`. */
  function repo(put: () => Response, head: () => Response): { repository: Repository; seen: string[] } {
    const seen: string[] = [];
    const transport: Transport = async (url, init) => {
      seen.push(`${init.method} ${url.pathname}`);
      if (url.pathname === '/v2/') return new Response(null, { status: 200 });
      return init.method === 'PUT' ? put() : head();
    };
    const client = new RegistryClient({
      registry: 'reg.example',
      credentials: { source: 'anonymous' },
      insecure: false,
      log: silentLogger,
      transport,
    });
    return { repository: new Repository(client, 'r'), seen };
  }
  const named = (d: string) => ({ 'Docker-Content-Digest': d });

  it('is done when the answer names our digest, without reading back', async () => {
    const { repository, seen } = repo(
      () => new Response(null, { status: 201, headers: named(digest) }),
      () => new Response(null, { status: 500 }),
    );
    await putManifest(repository, 'v1', bytes, 'application/vnd.oci.image.manifest.v1+json');
    expect(seen).toEqual(['GET /v2/', 'PUT /v2/r/manifests/v1']);
  });

  it('reads the tag back after a 200 web page, and fails unless it holds our digest', async () => {
    const page = () => new Response('<html>sign in</html>', { status: 200 });
    const ok = repo(page, () => new Response(null, { status: 200, headers: named(digest) }));
    await putManifest(ok.repository, 'v1', bytes, 'application/vnd.oci.image.manifest.v1+json');
    expect(ok.seen.at(-1)).toBe('HEAD /v2/r/manifests/v1');

    const other = `sha256:${'0'.repeat(64)}`;
    const stale = repo(page, () => new Response(null, { status: 200, headers: named(other) }));
    await expect(
      putManifest(stale.repository, 'v1', bytes, 'application/vnd.oci.image.manifest.v1+json'),
    ).rejects.toThrow(
      `tagging r:v1 failed: the registry answered 200, but the tag does not hold the image (it holds ${other}, not ${digest})`,
    );
    const absent = repo(page, () => new Response(null, { status: 404 }));
    await expect(
      putManifest(absent.repository, 'v1', bytes, 'application/vnd.oci.image.manifest.v1+json'),
    ).rejects.toThrow(/it holds nothing/);
  });
});
