/**
 * Image references, by the grammar of distribution's `reference` package, with Docker Hub's
 * normalisation (`ubuntu` → `docker.io/library/ubuntu`).
 */

import { UserError } from '../failure.js';

export interface Reference {
  /** Registry host as written, with its port: `ghcr.io`, `127.0.0.1:5000`, `docker.io`. */
  registry: string;
  /** Repository path: lowercase components separated by `/`. */
  repository: string;
  tag?: string;
  digest?: string;
}

/** An image reference that does not parse, or names what it may not (not the built-in ReferenceError). */
export class BadReferenceError extends UserError {}

const COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;
const HOST =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$/;

export const DOCKER_HUB = 'docker.io';

export function parseReference(input: string): Reference {
  const ref = input.trim();
  const bad = (why: string) => new BadReferenceError(`invalid image reference "${ref}": ${why}`);
  if (!ref) throw bad('it is empty');
  if (ref.length > 255 + 128 + 80) throw bad('it is too long');

  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw bad(`"${digest}" is not a digest (algorithm:hex)`);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.indexOf(':', lastSlash + 1);
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(`tag "${tag}" must match [A-Za-z0-9_][A-Za-z0-9._-]{0,127}`);
  }

  let registry = DOCKER_HUB;
  let path = rest;
  const slash = rest.indexOf('/');
  const first = slash >= 0 ? rest.slice(0, slash) : '';
  // Like docker: the first component is a registry when it looks like a host (a dot, a port) or is localhost.
  if (
    slash >= 0 &&
    (first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('['))
  ) {
    registry = first;
    path = rest.slice(slash + 1);
    if (!HOST.test(registry)) throw bad(`"${registry}" is not a registry host`);
    checkHost(registry, bad);
  }
  if (registry === 'index.docker.io' || registry === 'registry-1.docker.io') registry = DOCKER_HUB;
  if (!path) throw bad('the repository name is missing');
  if (path !== path.toLowerCase()) throw bad('repository names must be lowercase');
  for (const c of path.split('/')) {
    if (!COMPONENT.test(c)) throw bad(`"${c}" is not a valid repository path component`);
  }
  if (registry === DOCKER_HUB && !path.includes('/')) path = `library/${path}`;
  if (registry.length + 1 + path.length > 255) throw bad('the repository name is longer than 255 characters');
  return { registry, repository: path, tag, digest };
}

/**
 * What the grammar lets through but a URL cannot hold: a port outside 1-65535, an IPv6 address or
 * an IPv4-looking host that does not parse. Found here, so the registry client's `new URL` never
 * throws its bare "Invalid URL".
 */
function checkHost(registry: string, bad: (why: string) => BadReferenceError): void {
  const port = /:(\d+)$/.exec(registry.replace(/^\[.*\]/, ''))?.[1];
  if (port !== undefined && !(Number(port) >= 1 && Number(port) <= 65535))
    throw bad(`port ${port} is out of range (1-65535)`);
  try {
    new URL(`https://${registry}/`);
  } catch {
    throw bad(`"${registry}" is not a valid host name or address`);
  }
}

/** A reference pushed to: always a tag (the digest is computed). */
export type Target = Reference & { tag: string };

/**
 * The references an image is pushed to: at least one, each with a tag, in any repositories and
 * registries. A reference given twice is pushed once.
 */
export function parseTargets(lines: string[]): Target[] {
  const seen = new Set<string>();
  const targets: Target[] = [];
  for (const line of lines) {
    const r = parseReference(line);
    if (r.digest)
      throw new BadReferenceError(
        `image "${format(r)}" names a digest; name a tag to push to (digests are computed)`,
      );
    const target = { ...r, tag: r.tag ?? 'latest' };
    if (seen.has(format(target))) continue;
    seen.add(format(target));
    targets.push(target);
  }
  return targets;
}

/** The targets of one repository. */
export interface RepositoryTargets {
  /** `registry/repository`. */
  name: string;
  repository: string;
  targets: [Target, ...Target[]];
}

/** The targets of one registry, by repository. */
export interface RegistryTargets {
  registry: string;
  repositories: [RepositoryTargets, ...RepositoryTargets[]];
  /** Every target of this registry, in the order given. */
  targets: [Target, ...Target[]];
}

/**
 * Targets grouped by registry, then by repository, each group in the order its first target was
 * given: a blob goes once to each registry and is mounted into its other repositories.
 */
export function groupTargets(targets: Target[]): RegistryTargets[] {
  const registries = new Map<string, { targets: Target[]; repositories: Map<string, Target[]> }>();
  for (const t of targets) {
    let registry = registries.get(t.registry);
    if (!registry) registries.set(t.registry, (registry = { targets: [], repositories: new Map() }));
    registry.targets.push(t);
    const repository = registry.repositories.get(t.repository) ?? [];
    registry.repositories.set(t.repository, [...repository, t]);
  }
  return [...registries].map(([registry, g]) => ({
    registry,
    targets: g.targets as [Target, ...Target[]],
    repositories: [...g.repositories].map(([repository, ts]) => ({
      name: `${registry}/${repository}`,
      repository,
      targets: ts as [Target, ...Target[]],
    })) as [RepositoryTargets, ...RepositoryTargets[]],
  }));
}

export function format(r: Reference): string {
  return `${r.registry}/${r.repository}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;
}
