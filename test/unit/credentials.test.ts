import { describe, expect, it } from 'vitest';
import { mkdtemp, mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { credentialsFor, pushCredentials, resolveCredentials } from '../../src/registry/credentials.js';
import { parseReference } from '../../src/registry/reference.js';
import { show } from '../../src/log.js';

const noHome = { HOME: '/nonexistent-home' };

describe('resolveCredentials', () => {
  it('follows the documented order for the target registry', async () => {
    const env = { ...noHome, DEPOT_SNAPSHOT_TOKEN: 'snap', DEPOT_TOKEN: 'depot' };
    expect(
      await resolveCredentials(
        'r.example',
        { username: 'u', password: 'p', token: 't', isTarget: true },
        env,
      ),
    ).toMatchObject({ username: 'u', password: 'p' });
    expect(await resolveCredentials('r.example', { token: 't', isTarget: true }, env)).toMatchObject({
      username: 'x-token',
      password: 't',
    });
    expect(await resolveCredentials('r.example', { isTarget: true }, env)).toMatchObject({
      password: 'snap',
      source: 'DEPOT_SNAPSHOT_TOKEN',
    });
    expect(
      await resolveCredentials('r.example', { isTarget: true }, { ...noHome, DEPOT_TOKEN: 'depot' }),
    ).toMatchObject({ password: 'depot' });
  });

  it('never sends the inputs or Depot tokens to another registry (a base image on Docker Hub)', async () => {
    const env = { ...noHome, DEPOT_TOKEN: 'depot' };
    expect(await resolveCredentials('docker.io', { token: 't' }, env)).toEqual({ source: 'anonymous' });
    // …but Depot's own registries take Depot tokens.
    expect(await resolveCredentials('abc.registry.depot.dev', {}, env)).toMatchObject({ password: 'depot' });
  });

  it('reads the Docker config for other registries, and GITHUB_TOKEN for ghcr.io', async () => {
    const home = await mkdtemp(path.join(os.tmpdir(), 'creds-'));
    await mkdir(path.join(home, '.docker'));
    const auth = Buffer.from('me:secret').toString('base64');
    await writeFile(
      path.join(home, '.docker', 'config.json'),
      JSON.stringify({ auths: { 'https://index.docker.io/v1/': { auth } } }),
    );
    expect(await resolveCredentials('docker.io', {}, { HOME: home })).toMatchObject({
      username: 'me',
      password: 'secret',
    });
    expect(await resolveCredentials('ghcr.io', {}, { ...noHome, GITHUB_TOKEN: 'gh' })).toMatchObject({
      password: 'gh',
    });
  });
});

describe('show', () => {
  it('keeps a path on one line and shows bytes that are not UTF-8', () => {
    expect(show('a\nb')).toBe('a\\x0ab');
    expect(show(Buffer.from([0x66, 0xff, 0x2f, 0x67]))).toBe('f\\xff/g');
    expect(show('café')).toBe('café');
  });
});

describe('credentialsFor', () => {
  const inputs = { username: 'u', password: 'p', token: 't', insecureRegistry: true };

  it("gives the inputs and insecure-registry to the target's registry only", () => {
    const same = credentialsFor(parseReference('r.example:5000/base:1'), {
      inputs,
      targetRegistry: 'r.example:5000',
    });
    expect(same).toEqual({
      credentials: { username: 'u', password: 'p', token: 't', isTarget: true },
      insecureRegistry: true,
    });
    for (const targetRegistry of ['r.example', 'ghcr.io', undefined]) {
      expect(credentialsFor(parseReference('r.example:5000/base:1'), { inputs, targetRegistry })).toEqual({
        credentials: {},
        insecureRegistry: false,
      });
    }
    // Docker Hub's names are one registry: a base named `ubuntu` is not on a target at index.docker.io.
    expect(
      credentialsFor(parseReference('ubuntu'), { inputs, targetRegistry: 'ghcr.io' }).credentials,
    ).toEqual({});
  });
});

describe('pushCredentials', () => {
  const inputs = { username: 'u', password: 'p', token: 't', insecureRegistry: false };
  const env = {
    ...noHome,
    DEPOT_TOKEN: 'depot',
    GITHUB_TOKEN: 'gh',
    GITHUB_ACTOR: 'octo',
  };
  const first = 'abc.registry.depot.dev';
  const resolve = (registry: string) =>
    resolveCredentials(registry, pushCredentials(registry, first, inputs).credentials, env);

  it('gives the inputs to the first registry pushed to, and each other one its own', async () => {
    expect(await resolve(first)).toMatchObject({ username: 'u', password: 'p' });
    expect(await resolve('ghcr.io')).toEqual({ username: 'octo', password: 'gh', source: 'GITHUB_TOKEN' });
    expect(await resolve('xyz.registry.depot.dev')).toEqual({
      username: 'x-token',
      password: 'depot',
      source: 'DEPOT_TOKEN',
    });
    // Neither the inputs nor DEPOT_TOKEN reach a registry they are not for.
    expect(await resolve('quay.io')).toEqual({ source: 'anonymous' });
  });

  it('reads the Docker config for a registry the inputs are not for', async () => {
    const home = await mkdtemp(path.join(os.tmpdir(), 'creds-'));
    await mkdir(path.join(home, '.docker'));
    const auth = Buffer.from('me:secret').toString('base64');
    await writeFile(
      path.join(home, '.docker', 'config.json'),
      JSON.stringify({ auths: { 'quay.io': { auth } } }),
    );
    expect(
      await resolveCredentials('quay.io', pushCredentials('quay.io', first, inputs).credentials, {
        ...env,
        HOME: home,
      }),
    ).toMatchObject({ username: 'me', password: 'secret' });
  });

  it('keeps insecure-registry for every registry pushed to', () => {
    const plain = { ...inputs, insecureRegistry: true };
    expect(pushCredentials('r.example:5000', first, plain).insecureRegistry).toBe(true);
    expect(pushCredentials(first, first, plain).insecureRegistry).toBe(true);
  });
});
