import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { DOCKER_HUB, type Reference } from './reference.js';

export interface Credentials {
  username?: string;
  password?: string;
  /** An OAuth2 refresh token (Docker config `identitytoken`): used in the token exchange. */
  identityToken?: string;
  /** Where they came from, for the log (never the secret itself). */
  source: string;
}

export interface CredentialInputs {
  username?: string;
  password?: string;
  token?: string;
  /**
   * True for the registry this run pushes to. The inputs and DEPOT_* tokens are meant for it (and for
   * Depot's registries): they are never sent to another registry, such as a base image's on Docker Hub.
   */
  isTarget?: boolean;
}

/** The inputs a run is given for the registry it pushes to. */
export interface RegistryInputs {
  username?: string;
  password?: string;
  token?: string;
  insecureRegistry: boolean;
}

/**
 * What a registry other than the one pushed to is given (a base image's, the source of a promote or
 * a pull): the credential inputs and insecure-registry only when it is `targetRegistry`, the registry
 * those inputs are for; any other registry gets its own credentials (see resolveCredentials) and TLS.
 */
export function credentialsFor(
  ref: Reference,
  opts: { inputs: RegistryInputs; targetRegistry?: string },
): { credentials: CredentialInputs; insecureRegistry: boolean } {
  if (ref.registry !== opts.targetRegistry) return { credentials: {}, insecureRegistry: false };
  const { username, password, token, insecureRegistry } = opts.inputs;
  return { credentials: { username, password, token, isTarget: true }, insecureRegistry };
}

/**
 * What a registry pushed to is given. The credential inputs are for the first `image` line's
 * registry (`firstRegistry`) alone; every other registry gets its own (resolveCredentials without
 * the inputs: the Docker config, DEPOT_* tokens for `*.registry.depot.dev`, GITHUB_TOKEN for
 * ghcr.io). insecure-registry holds for every registry pushed to: each was named by the user.
 */
export function pushCredentials(
  registry: string,
  firstRegistry: string,
  inputs: RegistryInputs,
): { credentials: CredentialInputs; insecureRegistry: boolean } {
  const { username, password, token, insecureRegistry } = inputs;
  if (registry !== firstRegistry) return { credentials: { isTarget: false }, insecureRegistry };
  return { credentials: { username, password, token, isTarget: true }, insecureRegistry };
}

/**
 * Credentials for `registry`, first found wins: the `username`/`password` inputs; the `token` input
 * (Basic `x-token:<token>`, as Depot's registry takes it); DEPOT_SNAPSHOT_TOKEN then DEPOT_TOKEN;
 * the Docker config (credHelpers, credsStore, auths); GITHUB_TOKEN for ghcr.io; anonymous.
 */
export async function resolveCredentials(
  registry: string,
  inputs: CredentialInputs,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Credentials> {
  if (!inputs.isTarget && !registry.endsWith('.registry.depot.dev')) return fromOtherSources(registry, env);
  if (inputs.username || inputs.password) {
    return {
      username: inputs.username ?? '',
      password: inputs.password ?? '',
      source: 'username/password inputs',
    };
  }
  if (inputs.token) return { username: 'x-token', password: inputs.token, source: 'token input' };
  for (const name of ['DEPOT_SNAPSHOT_TOKEN', 'DEPOT_TOKEN']) {
    if (env[name]) return { username: 'x-token', password: env[name], source: name };
  }
  return fromOtherSources(registry, env);
}

/** The Docker config, GITHUB_TOKEN for ghcr.io, else anonymous. */
async function fromOtherSources(registry: string, env: NodeJS.ProcessEnv): Promise<Credentials> {
  const fromDocker = await fromDockerConfig(registry, env);
  if (fromDocker) return fromDocker;
  if (registry === 'ghcr.io' && env.GITHUB_TOKEN) {
    return {
      username: env.GITHUB_ACTOR || 'x-access-token',
      password: env.GITHUB_TOKEN,
      source: 'GITHUB_TOKEN',
    };
  }
  return { source: 'anonymous' };
}

interface DockerConfig {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

async function fromDockerConfig(registry: string, env: NodeJS.ProcessEnv): Promise<Credentials | undefined> {
  const dir = env.DOCKER_CONFIG || path.join(env.HOME || os.homedir(), '.docker');
  const file = path.join(dir, 'config.json');
  let config: DockerConfig;
  try {
    config = JSON.parse(await readFile(file, 'utf8')) as DockerConfig;
  } catch {
    return undefined;
  }
  const keys = registryKeys(registry);
  const helper = keys.map((k) => config.credHelpers?.[k]).find(Boolean) ?? config.credsStore;
  if (helper) {
    const got = await runHelper(helper, keys[0]);
    if (got) return { ...got, source: `docker-credential-${helper}` };
  }
  for (const key of keys) {
    const a = config.auths?.[key];
    if (!a) continue;
    let username = a.username;
    let password = a.password;
    if (a.auth) {
      const decoded = Buffer.from(a.auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      username = decoded.slice(0, colon);
      password = decoded.slice(colon + 1);
    }
    if (a.identitytoken)
      return { username, identityToken: a.identitytoken, source: `${file} (identity token)` };
    if (username !== undefined) return { username, password, source: file };
  }
  return undefined;
}

/** Keys a Docker config may file this registry under: Docker Hub has its historical URL. */
function registryKeys(registry: string): string[] {
  if (registry === DOCKER_HUB)
    return ['https://index.docker.io/v1/', 'index.docker.io', 'docker.io', 'registry-1.docker.io'];
  return [registry, `https://${registry}`, `http://${registry}`];
}

/** `docker-credential-<helper> get`, the server on stdin, `{Username, Secret}` on stdout. */
function runHelper(helper: string, server: string): Promise<Omit<Credentials, 'source'> | undefined> {
  return new Promise((resolve) => {
    const child = spawn(`docker-credential-${helper}`, ['get'], { stdio: ['pipe', 'pipe', 'ignore'] });
    // A helper that prompts (a desktop keyring, pinentry) must not hang the job.
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('close', () => clearTimeout(timer));
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', () => resolve(undefined));
    child.on('close', (code) => {
      if (code !== 0) return resolve(undefined);
      try {
        const r = JSON.parse(out) as { Username?: string; Secret?: string };
        if (!r.Secret) return resolve(undefined);
        resolve(
          r.Username === '<token>'
            ? { identityToken: r.Secret }
            : { username: r.Username, password: r.Secret },
        );
      } catch {
        resolve(undefined);
      }
    });
    child.stdin.end(server);
  });
}
