import type { Logger } from '../log.js';
import { Repository } from './repository.js';
import { RegistryClient, isLoopback } from './client.js';
import { resolveCredentials, type CredentialInputs } from './credentials.js';
import type { Reference } from './reference.js';

export interface ConnectOptions {
  /** The credential inputs, when they are meant for this registry (see resolveCredentials). */
  credentials: CredentialInputs;
  /** Plain HTTP asked for; loopback registries get it anyway. */
  insecureRegistry: boolean;
  access: 'push' | 'pull';
  log: Logger;
}

/** A repository on its registry, with the credentials found for that registry. */
export async function connect(reference: Reference, opts: ConnectOptions): Promise<Repository> {
  const credentials = await resolveCredentials(reference.registry, {
    ...opts.credentials,
    // A push target unless told otherwise (a registry pushed to that the inputs are not for).
    isTarget: opts.credentials.isTarget ?? opts.access === 'push',
  });
  const insecure = opts.insecureRegistry || isLoopback(reference.registry.replace(/:\d+$/, ''));
  opts.log.info(
    `${opts.access === 'push' ? 'pushing to' : 'reading'} ${reference.registry}/${reference.repository} (credentials: ${credentials.source}${insecure ? ', plain HTTP' : ''})`,
  );
  const client = new RegistryClient({ registry: reference.registry, credentials, insecure, log: opts.log });
  return new Repository(client, reference.repository, opts.access);
}
