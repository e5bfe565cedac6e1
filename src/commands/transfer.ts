import type { CommonInputs, PromoteInputs, PullInputs, SourceInput } from '../inputs/index.js';
import type { Logger } from '../log.js';
import { LayoutWriter } from '../layout/layout.js';
import { layoutSource } from '../layout/reader.js';
import { connect } from '../registry/connect.js';
import { copyImage, copyReferrers } from '../content/copy.js';
import type { Descriptor } from '../content/oci.js';
import type { ImageSource, ImageTarget } from '../content/storage.js';
import { pullToLayout } from '../layout/pull.js';
import { registrySource } from '../registry/repository.js';
import { credentialsFor } from '../registry/credentials.js';
import { RegistryError } from '../registry/errors.js';
import { format } from '../registry/reference.js';
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

/** `pull`: the image at `from` written to the OCI layout at `output`, every blob verified. */
export async function pull(inputs: PullInputs, log: Logger): Promise<void> {
  const phases = new Phases(inputs.quiet);
  const from = inputs.source.reference;
  // A pull's only registry is its source: the credential inputs are for it.
  const { source, reference, name } = await openSource(inputs.source, inputs, from.registry, log);
  const layout = await LayoutWriter.create(inputs.output);
  try {
    const pulled = await phases.run('pull', 'Pull', () =>
      pullToLayout(source, reference, layout, from.tag ?? 'latest', {
        concurrency: inputs.concurrency,
        log,
      }),
    );
    log.info(`pulled ${name} (${pulled.digest}) into ${inputs.output}`);
    await publish(inputs, phases, {
      operation: 'pull',
      digest: pulled.digest,
      manifest: pulled.manifest,
      images: [],
      tags: [],
      where: { output: inputs.output },
      uploaded: 0,
      referrers: pulled.referrers,
    });
  } catch (err) {
    await layout.abort();
    throw err;
  }
}

async function publish(
  inputs: CommonInputs,
  phases: Phases,
  result: Omit<Result, 'base' | 'changes' | 'durationMs'>,
): Promise<void> {
  await publishResult(
    { ...result, base: null, changes: null, durationMs: Date.now() - phases.startedAt },
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
