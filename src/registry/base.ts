import type { Logger } from '../log.js';
import { runtimePlatform } from '../image/build.js';
import { MediaType, type Descriptor, type ImageConfig, type Index, type Manifest } from '../content/oci.js';
import type { Repository } from './repository.js';
import { credentialsFor, type CredentialInputs } from './credentials.js';
import { connect } from './connect.js';
import { RegistryError } from './errors.js';
import { getImageConfig, getManifest, parseJson } from './manifests.js';
import { format, parseReference, type Reference } from './reference.js';
import { MARKER_COMMENT, markerPlaces, type Marker } from '../image/marker.js';

/**
 * The base named by the marker file of an image this action made: its layers below the marker, read
 * from the place it was pushed to that fits this push best (one in the target's registry, else the
 * first), the next place when that one cannot be reached. The parent's manifest digest is recorded
 * when its tag still holds those layers.
 */
export async function baseFromMarker(marker: Marker, opts: Omit<BaseOptions, 'ref'>): Promise<BaseImage> {
  const places = markerPlaces(marker).map((p) => parseReference(`${p.repository}:${p.tag}`));
  const ordered = [
    ...places.filter((r) => r.registry === opts.targetRegistry),
    ...places.filter((r) => r.registry !== opts.targetRegistry),
  ];
  let reference = ordered[0];
  let repository = await openBase(reference, opts);
  let parent = null;
  for (const [i, ref] of ordered.entries()) {
    reference = ref;
    repository = i === 0 ? repository : await openBase(ref, opts);
    let why: string;
    try {
      parent = await getManifest(repository, ref.tag!);
      if (parent) break;
      why = 'its tag is gone';
    } catch (err) {
      why = `cannot be read (${(err as Error).message})`;
    }
    // The last place is used all the same: its blobs may still be readable, else the copy says why.
    if (i === ordered.length - 1) break;
    opts.log.info(`base image from the marker: ${format(ref)} ${why}; trying ${format(ordered[i + 1])}`);
  }
  const layers: Descriptor[] = marker.layers.map(({ diffId: _diffId, ...d }) => d);
  const parentLayers = parent ? (parseJson<Manifest>(parent.bytes).layers ?? []) : [];
  const same =
    parentLayers.length === layers.length + 1 && layers.every((l, i) => parentLayers[i].digest === l.digest);
  const name = format(reference);
  opts.log.info(
    `base image from the marker: ${name}${same ? ` (${parent!.digest})` : ''}, ${layers.length} layers below its marker`,
  );
  return {
    name,
    digest: same ? parent!.digest : '',
    layers,
    diffIds: marker.layers.map((l) => l.diffId),
    config: {
      created: marker.created,
      architecture: '',
      os: '',
      config: marker.config,
      history: marker.history,
      rootfs: { type: 'layers', diff_ids: [] },
    },
    repository,
    reference,
    places,
  };
}

/** The base's repository, read-only, with the credentials credentialsFor gives its registry. */
function openBase(reference: Reference, opts: Omit<BaseOptions, 'ref'>): Promise<Repository> {
  const inputs = { ...opts.credentials, insecureRegistry: opts.insecureRegistry };
  return connect(reference, {
    ...credentialsFor(reference, { inputs, targetRegistry: opts.targetRegistry }),
    access: 'pull',
    log: opts.log,
  });
}

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
  /** Every place its marker names (an image this action pushed to several): others to mount from. */
  places?: Reference[];
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
  const repository = await openBase(reference, opts);

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
  const diffIds = [...(config.rootfs?.diff_ids ?? [])];
  if (diffIds.length !== manifest.layers.length)
    throw fail(`its config lists ${diffIds.length} layers, its manifest ${manifest.layers.length}`);
  const layers = manifest.layers.map((d) => ({
    mediaType: OCI_LAYER_TYPE[d.mediaType] ?? d.mediaType,
    digest: d.digest,
    size: d.size,
    ...(d.annotations ? { annotations: d.annotations } : {}),
  }));
  // An image this action made ends with its marker layer: replaced by the new image's, never stacked.
  const history = [...(config.history ?? [])];
  const last = history.filter((h) => !h.empty_layer).at(-1);
  if (last?.comment?.startsWith(MARKER_COMMENT)) {
    layers.pop();
    diffIds.pop();
    history.splice(history.lastIndexOf(last), 1);
  }
  opts.log.info(`base image ${name}: ${fetched.digest}, ${layers.length} layers`);
  return {
    name,
    digest: fetched.digest,
    layers,
    diffIds: [...diffIds],
    config: { ...config, history },
    repository,
    reference,
  };
}
