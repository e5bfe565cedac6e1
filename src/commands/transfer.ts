import type { CommonInputs, PromoteInputs, PullInputs, SourceInput } from '../inputs/index.js';
import type { Logger } from '../log.js';
import { LayoutWriter } from '../layout/layout.js';
import { layoutSource } from '../layout/reader.js';
import { connect } from '../registry/connect.js';
import { copyImage, copyReferrers, type CopyResult } from '../content/copy.js';
import { describeExisting } from '../content/existing.js';
import type { Descriptor } from '../content/oci.js';
import type { ImageSource, ImageTarget } from '../content/storage.js';
import { pullToLayout } from '../layout/pull.js';
import { registrySource, Repository } from '../registry/repository.js';
import { credentialsFor, pushCredentials } from '../registry/credentials.js';
import { NotWrittenError, RegistryError, type RegistryFailure } from '../registry/errors.js';
import { format, groupTargets, type Reference, type Target } from '../registry/reference.js';
import { UserError } from '../failure.js';
import { dockerArchive, hasZstdLayers, loadableImage } from '../image/docker-archive.js';
import { findRuntime, loadInto, readsZstd } from './load.js';
import { credentialInputs } from '../destinations/registry.js';
import { Phases, publishResult, type Result } from './publish.js';

/**
 * `promote`: the image at `from` copied to every `image` tag, digest unchanged, nothing recaptured.
 * Each registry gets it from the source once, into its first repository, and its other repositories
 * mount from there; a registry that fails does not stop the others (see NotWrittenError).
 */
export async function promote(inputs: PromoteInputs, log: Logger): Promise<void> {
  const phases = new Phases(inputs.quiet);
  const first = inputs.targets[0];
  const { source, reference, name } = await openSource(inputs.source, inputs, first.registry, log);
  const wanted = inputs.source.kind === 'registry' ? inputs.source.reference.digest : undefined;
  const opts = { concurrency: inputs.concurrency, log };
  let copied: CopyResult | undefined;
  const written: Target[] = [];
  const failures: RegistryFailure[] = [];
  let uploaded = 0;
  /** Per repository written: where its referrers come from (the source, or the registry's first). */
  const referrerCopies: Array<{ from: ImageSource; to: Repository }> = [];
  await phases.run('promote', 'Promote', async () => {
    for (const group of groupTargets(inputs.targets)) {
      const registryWritten: Target[] = [];
      try {
        const client = await connect(group.targets[0], {
          ...pushCredentials(group.registry, first.registry, {
            ...credentialInputs(inputs),
            insecureRegistry: inputs.insecureRegistry,
          }),
          access: 'push',
          log,
        });
        const repos: Repository[] = [];
        try {
          for (const [i, r] of group.repositories.entries()) {
            const repo = i === 0 ? client : new Repository(client.client, r.repository);
            repos.push(repo);
            // Read from the source once (by digest after the first registry: a moving tag cannot split
            // the run); the other repositories of this registry mount from the first.
            const from = i === 0 ? source : client;
            const ref = i === 0 ? (copied?.digest ?? reference) : copied!.digest;
            const result = await copyImage(
              from,
              ref,
              repo,
              r.targets.map((t) => t.tag),
              opts,
            );
            if (wanted && result.digest !== wanted)
              throw new WrongDigestError(`promote: ${name} resolved to ${result.digest}`);
            copied ??= result;
            registryWritten.push(...r.targets);
            referrerCopies.push({ from, to: repo });
          }
        } finally {
          uploaded += repos.reduce((n, r) => n + r.uploaded, 0);
        }
      } catch (err) {
        if (err instanceof WrongDigestError) throw err;
        const notWritten = group.targets.filter((t) => !registryWritten.includes(t));
        const error = err as Error;
        failures.push({ registry: group.registry, references: notWritten.map(format), error });
        if (inputs.targets.length > notWritten.length)
          log.warn(`registry ${group.registry} failed, going on with the others: ${error.message}`);
      } finally {
        written.push(...registryWritten);
      }
    }
  });
  if (!copied) throw failures[0].error;
  // The image's bytes only (counted above): its attestations are not.
  const digest = copied.digest;
  // The outputs name an artifact only when every repository written has it.
  let referrers: Descriptor[] | null = null;
  await phases.run('referrers', 'Attestations', async () => {
    for (const { from, to } of referrerCopies) {
      const found = await promoteReferrers(from, digest, to, inputs.concurrency, log);
      referrers = (referrers ?? found).filter((d) => found.some((f) => f.digest === d.digest));
    }
  });
  const images = written.map(format);
  for (const image of images) log.info(`promoted ${name} to ${image} (${copied.digest})`);
  await publish(inputs, phases, {
    operation: 'promote',
    digest: copied.digest,
    manifest: copied.manifest,
    images,
    tags: [...new Set(written.map((t) => t.tag))],
    where: { image: `${written[0].registry}/${written[0].repository}@${copied.digest}` },
    uploaded,
    referrers: referrers ?? [],
  });
  if (failures.length) throw new NotWrittenError(failures);
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

/** The source is not the image its digest names: nothing more is promoted. */
class WrongDigestError extends RegistryError {}

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
