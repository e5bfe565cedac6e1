import type { Logger } from '../log.js';
import type { CommonInputs, SnapshotInputs } from '../inputs/index.js';
import type { CredentialInputs } from '../registry/credentials.js';
import { pushCredentials } from '../registry/credentials.js';
import { RegistryDestination } from '../registry/push.js';
import { LayerCache } from '../registry/layer-cache.js';
import { groupTargets } from '../registry/reference.js';
import type { Destination } from './destination.js';
import { Registries } from './registries.js';

/** The credential inputs (`username`/`password`/`token`), for the registry they are meant for. */
export function credentialInputs(inputs: CommonInputs): CredentialInputs {
  return { token: inputs.token, username: inputs.username, password: inputs.password };
}

/**
 * Every registry of the `image` lines, one RegistryDestination each (blobs uploaded, found or
 * mounted, then the manifests), behind one Destination (see Registries). A registry that cannot be
 * opened is left out and reported at the end, unless it is the only one.
 */
export async function openRegistry(inputs: SnapshotInputs, log: Logger): Promise<Destination> {
  const first = inputs.targets[0];
  if (!first) throw new Error('a push needs an image to push to'); // getInputs requires one unless dry-run
  const cache = await LayerCache.load();
  const registries = await Registries.open(
    groupTargets(inputs.targets).map((group) => ({
      registry: group.registry,
      targets: group.targets,
      open: () =>
        RegistryDestination.open({
          targets: group.targets,
          ...pushCredentials(group.registry, first.registry, { ...inputs }),
          cache,
          log,
        }),
    })),
    { concurrency: inputs.concurrency, log },
  );
  return registries.destination(cache.file);
}
