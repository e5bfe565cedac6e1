import type { CommonInputs, PromoteInputs, PullInputs, SourceInput } from '../inputs/index.js';
import type { Logger } from '../log.js';
import { LayoutWriter } from '../layout/layout.js';
import { layoutSource } from '../layout/reader.js';
import { connect } from '../registry/connect.js';
import { copyImage, copyReferrers } from '../content/copy.js';
import { describeExisting } from '../content/existing.js';
import type { Descriptor } from '../content/oci.js';
import type { ImageSource, ImageTarget } from '../content/storage.js';
import { pullToLayout } from '../layout/pull.js';
import { registrySource } from '../registry/repository.js';
import { credentialsFor } from '../registry/credentials.js';
import { RegistryError } from '../registry/errors.js';
import { format, type Reference } from '../registry/reference.js';
import { UserError } from '../failure.js';
import { dockerArchive, hasZstdLayers, loadableImage } from '../image/docker-archive.js';
import { findRuntime, loadInto, readsZstd } from './load.js';
import { credentialInputs } from '../destinations/registry.js';
import { Phases, publishResult, type Result } from './publish.js';

/** `promote`: the image at `from` copied to every `image` tag, digest unchanged, nothing recaptured. */
export async function promote(inputs: PromoteInputs, log: Logger): Promise<void> {
  const phases = new Phases(inputs.quiet);
  const [target] = inputs.targets;
  const { source, reference, name } = await openSource(inputs.source, inputs, target.registry, log);
  const dest = await connect(target, {
    credentials: credentialInputs(inputs),
    insecureRegistry: inputs.insecureRegistry,
    access: 'push',
    log,
  });
  const tags = inputs.targets.map((t) => t.tag);
  const copied = await phases.run('promote', 'Promote', () =>
    copyImage(source, reference, dest, tags, { concurrency: inputs.concurrency, log }),
  );
  const wanted = inputs.source.kind === 'registry' ? inputs.source.reference.digest : undefined;
  if (wanted && copied.digest !== wanted)
    throw new RegistryError(`promote: ${name} resolved to ${copied.digest}`);
  const uploaded = dest.uploaded; // the image's bytes: its attestations are not counted
  const referrers = await phases.run('referrers', 'Attestations', () =>
    promoteReferrers(source, copied.digest, dest, inputs.concurrency, log),
  );
  const repository = `${target.registry}/${target.repository}`;
  const images = tags.map((t) => `${repository}:${t}`);
  for (const image of images) log.info(`promoted ${name} to ${image} (${copied.digest})`);
  await publish(inputs, phases, {
    operation: 'promote',
    digest: copied.digest,
    manifest: copied.manifest,
    images,
    tags,
    where: { image: `${repository}@${copied.digest}` },
    uploaded,
    referrers,
  });
}

/**
 * The artifacts about the image (SBOM, provenance, signatures) copied after it, listed as its
 * referrers in the target. The image is promoted already: a failure here is one warning.
 */
async function promoteReferrers(
  source: ImageSource,
  digest: string,
  target: ImageTarget,
  concurrency: number,
  log: Logger,
): Promise<Descriptor[]> {
  try {
    const copied = await copyReferrers(source, digest, target, { concurrency });
    log.info(
      `artifacts about the image: ${copied.length} copied (${copied.map((d) => d.artifactType).join(', ') || 'none found'})`,
    );
    return copied;
  } catch (err) {
    log.warn(`the artifacts about ${digest} (SBOM, provenance) were not promoted: ${(err as Error).message}`);
    return [];
  }
}

/**
 * `pull`: the image at `from` written to the OCI layout at `output`, every blob verified; with `load`,
 * loaded into Docker or podman (streamed into its `load`: from the layout when one was written, else
 * straight from the registry).
 */
export async function pull(inputs: PullInputs, log: Logger): Promise<void> {
  const phases = new Phases(inputs.quiet);
  const from = inputs.source.reference;
  // Found before anything is read, so a machine with no runtime fails at once.
  const runtime = inputs.load ? await findRuntime() : null;
  // A pull's only registry is its source: the credential inputs are for it.
  const opened = await openSource(inputs.source, inputs, from.registry, log);
  const layout = inputs.writeLayout ? await LayoutWriter.create(inputs.output) : null;
  try {
    let pulled: { digest: string; manifest: Buffer; referrers: Descriptor[] };
    let source = opened.source;
    if (layout) {
      pulled = await phases.run('pull', 'Pull', () =>
        pullToLayout(opened.source, opened.reference, layout, from.tag ?? 'latest', {
          concurrency: inputs.concurrency,
          log,
        }),
      );
      log.info(`pulled ${opened.name} (${pulled.digest}) into ${inputs.output}`);
      source = layoutSource(inputs.output);
    }
    let loaded: { runtime: string; image: string } | undefined;
    if (runtime) {
      const reference = layout ? (from.tag ?? 'latest') : opened.reference;
      const image = await loadableImage(source, reference);
      pulled ??= { digest: image.digest, manifest: image.manifest, referrers: [] };
      if (hasZstdLayers(image) && !readsZstd(runtime))
        throw new UserError(
          `load: ${opened.name} has zstd layers, which Docker ${runtime.version} cannot load (zstd needs Docker 23.0 or newer); load it into podman, or snapshot it with compression gzip`,
        );
      const name = loadName(from, image.digest);
      await phases.run('load', `Load into ${runtime.name}`, () =>
        loadInto(runtime, dockerArchive(source, image, name)),
      );
      log.info(`loaded ${opened.name} (${image.digest}) into ${runtime.name} ${runtime.version} as ${name}`);
      loaded = { runtime: runtime.name, image: name };
    }
    await publish(inputs, phases, {
      operation: 'pull',
      digest: pulled!.digest,
      manifest: pulled!.manifest,
      images: [],
      tags: [],
      where: layout ? { output: inputs.output } : {},
      uploaded: 0,
      ...(loaded ? { loaded } : {}),
      referrers: pulled!.referrers,
    });
  } catch (err) {
    await layout?.abort();
    throw err;
  }
}

/**
 * The name a loaded image gets: the source reference (`latest` when it named no tag); pinned by
 * digest alone, its repository with the tag `sha256-<hex>`, since a runtime's `load` cannot record a
 * digest, and an image loaded with no name could only be run by its ID.
 */
function loadName(from: Reference, digest: string): string {
  return `${from.registry}/${from.repository}:${from.tag ?? `sha256-${digest.slice('sha256:'.length)}`}`;
}

async function publish(
  inputs: CommonInputs,
  phases: Phases,
  result: Omit<Result, 'base' | 'changes' | 'durationMs' | 'key' | 'skipped'>,
): Promise<void> {
  const key = describeExisting(result.digest, result.manifest).key ?? null;
  await publishResult(
    { ...result, base: null, changes: null, durationMs: Date.now() - phases.startedAt, key, skipped: false },
    { metadataFile: inputs.metadataFile, quiet: inputs.quiet },
  );
}

/**
 * The image promote or pull reads: an OCI layout, or a repository, given the credential inputs only
 * if it is on `targetRegistry`, the registry they are meant for.
 */
async function openSource(
  from: SourceInput,
  inputs: CommonInputs,
  targetRegistry: string,
  log: Logger,
): Promise<{ source: ImageSource; reference: string; name: string }> {
  if (from.kind === 'layout') {
    return { source: layoutSource(from.dir), reference: from.tag, name: `oci:${from.dir}:${from.tag}` };
  }
  const ref = from.reference;
  const repo = await connect(ref, {
    ...credentialsFor(ref, { inputs, targetRegistry }),
    access: 'pull',
    log,
  });
  // referenceInput gives a reference without a digest the tag latest.
  return { source: registrySource(repo), reference: ref.digest ?? ref.tag ?? 'latest', name: format(ref) };
}
