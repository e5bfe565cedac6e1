import { describe, expect, it } from 'vitest';
import { isLoopback, parseChallenge } from '../../src/registry/client.js';
import { describeFailure, RegistryError } from '../../src/registry/errors.js';

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
