import type { CommonInputs, PromoteInputs, PullInputs, SourceInput } from '../inputs/index.js';
import type { Logger } from '../log.js';
import { LayoutWriter } from '../layout/layout.js';
import { layoutSource } from '../layout/reader.js';
import { connect } from '../registry/connect.js';
import { copyImage, type CopyResult } from '../content/copy.js';
import type { ImageSource } from '../content/storage.js';
import { pullToLayout } from '../layout/pull.js';
import { registrySource, Repository } from '../registry/repository.js';
import { credentialsFor, pushCredentials } from '../registry/credentials.js';
import { NotWrittenError, RegistryError, type RegistryFailure } from '../registry/errors.js';
import { format, groupTargets, type Target } from '../registry/reference.js';
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
  });
  if (failures.length) throw new NotWrittenError(failures);
}

/** The source is not the image its digest names: nothing more is promoted. */
class WrongDigestError extends RegistryError {}

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
