import type { Logger } from '../log.js';
import type { CommonInputs, SnapshotInputs } from '../inputs/index.js';
import type { CredentialInputs } from '../registry/credentials.js';
import { RegistryDestination } from '../registry/push.js';
import type { Destination } from './destination.js';

/** The credential inputs (`username`/`password`/`token`), for the registry they are meant for. */
export function credentialInputs(inputs: CommonInputs): CredentialInputs {
  return { token: inputs.token, username: inputs.username, password: inputs.password };
}

/** The repository of the `image` tags: blobs uploaded (or found, or mounted), then the manifest. */
export async function openRegistry(inputs: SnapshotInputs, log: Logger): Promise<Destination> {
  const [first, ...rest] = inputs.targets;
  if (!first) throw new Error('a push needs an image to push to'); // getInputs requires one unless dry-run
  const registry = await RegistryDestination.open({
    targets: [first, ...rest],
    credentials: credentialInputs(inputs),
    insecureRegistry: inputs.insecureRegistry,
    log,
  });
  return {
    name: registry.image,
    kind: 'registry',
    ownPaths: [registry.cacheFile],
    upToDate: (want) => registry.upToDate(want),
    addBase: (base) => registry.addBase(base, inputs.concurrency),
    reuse: (fp) => registry.reuse(fp),
    exists: (digest) => registry.exists(digest),
    wrote: (fp, layer) => registry.wrote(fp, layer),
    sink: (label) => registry.sink(label),
    finish: (image, _tags, artifacts) => registry.finish(image, artifacts),
    abort: () => registry.abort(),
    uploaded: () => registry.uploaded,
    images: (tags) => tags.map((t) => `${registry.image}:${t}`),
    where: (digest) => ({ image: `${registry.image}@${digest}` }),
  };
}
