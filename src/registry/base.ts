import type { Logger } from '../log.js';
import { runtimePlatform } from '../image/build.js';
import { MediaType, type Descriptor, type ImageConfig, type Index, type Manifest } from '../image/oci.js';
import { Repository } from './blobs.js';
import { RegistryClient, isLoopback } from './client.js';
import { resolveCredentials, type CredentialInputs } from './credentials.js';
import { RegistryError } from './errors.js';
import { getImageConfig, getManifest, parseJson } from './manifests.js';
import { format, parseReference, type Reference } from './reference.js';

/** The image a sandbox started from: its layers go into the snapshot untouched. */
export interface BaseImage {
  /** The reference as the user gave it, normalised. */
  name: string;
  /** Digest of the platform's image manifest. */
  digest: string;
  layers: Descriptor[];
  diffIds: string[];
  config: ImageConfig;
  /** Where its blobs can be read. */
  repository: Repository;
  reference: Reference;
}

/** Docker's layer media types name the same bytes as OCI's: renamed, digests unchanged. */
const OCI_LAYER_TYPE: Record<string, string> = {
  'application/vnd.docker.image.rootfs.diff.tar.gzip': MediaType.layerGzip,
  'application/vnd.docker.image.rootfs.diff.tar': MediaType.layerTar,
};

export interface BaseOptions {
  ref: string;
  /** Credentials for the base's registry when it is the target's too; otherwise its own are looked up. */
  credentials: CredentialInputs;
  targetRegistry?: string;
  insecureRegistry: boolean;
  log: Logger;
}

/**
 * Reads a base image's manifest (OCI or Docker schema 2; from an index or manifest list, the entry for
 * this runtime's platform) and config.
 */
export async function resolveBase(opts: BaseOptions): Promise<BaseImage> {
  const reference = parseReference(opts.ref);
  if (!reference.tag && !reference.digest) reference.tag = 'latest';
  const name = format(reference);
  const sameRegistry = reference.registry === opts.targetRegistry;
  const credentials = await resolveCredentials(reference.registry, sameRegistry ? opts.credentials : {});
  const insecure =
    (sameRegistry && opts.insecureRegistry) || isLoopback(reference.registry.replace(/:\d+$/, ''));
  const client = new RegistryClient({ registry: reference.registry, credentials, insecure, log: opts.log });
  const repository = new Repository(client, reference.repository, 'pull');

  const fail = (why: string) => new RegistryError(`base-image ${name}: ${why}`);
  let fetched = await getManifest(repository, reference.digest ?? reference.tag!).catch(
    (err: RegistryError) => {
      throw fail(err.message);
    },
  );
  if (!fetched) throw fail('not found (check the reference, or push it first)');
  let manifest = parseJson<Manifest & Index>(fetched.bytes);
  if (Array.isArray(manifest.manifests)) {
    const want = runtimePlatform();
    const matches = manifest.manifests.filter(
      (d) => d.platform?.os === want.os && d.platform?.architecture === want.architecture,
    );
    const entry =
      matches.find((d) => !want.variant || !d.platform?.variant || d.platform.variant === want.variant) ??
      matches[0];
    if (!entry) {
      const offered = manifest.manifests
        .map((d) => `${d.platform?.os}/${d.platform?.architecture}`)
        .join(', ');
      throw fail(`has no image for ${want.os}/${want.architecture} (it has ${offered || 'none'})`);
    }
    fetched = await getManifest(repository, entry.digest);
    if (!fetched) throw fail(`its ${want.architecture} manifest ${entry.digest} is missing`);
    manifest = parseJson<Manifest & Index>(fetched.bytes);
  }
  if (!Array.isArray(manifest.layers) || !manifest.config?.digest)
    throw fail(`is not an image manifest (${fetched.mediaType})`);
  const config = await getImageConfig(repository, manifest);
  const diffIds = config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== manifest.layers.length)
    throw fail(`its config lists ${diffIds.length} layers, its manifest ${manifest.layers.length}`);
  const layers = manifest.layers.map((d) => ({
    mediaType: OCI_LAYER_TYPE[d.mediaType] ?? d.mediaType,
    digest: d.digest,
    size: d.size,
    ...(d.annotations ? { annotations: d.annotations } : {}),
  }));
  opts.log.info(`base image ${name}: ${fetched.digest}, ${layers.length} layers`);
  return { name, digest: fetched.digest, layers, diffIds, config, repository, reference };
}
