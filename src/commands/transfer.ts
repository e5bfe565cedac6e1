import { InputError, type Inputs } from '../inputs/index.js';
import type { Logger } from '../log.js';
import { LayoutWriter } from '../layout/layout.js';
import { layoutSource } from '../layout/reader.js';
import { connect } from '../registry/connect.js';
import { copyImage } from '../content/copy.js';
import type { ImageSource } from '../content/storage.js';
import { pullToLayout } from '../layout/pull.js';
import { registrySource } from '../registry/repository.js';
import { credentialsFor } from '../registry/credentials.js';
import { RegistryError } from '../registry/errors.js';
import { format } from '../registry/reference.js';
import { credentialInputs } from '../destinations/registry.js';
import { Phases, publishResult, type Result } from './publish.js';

/** `promote`: the image at `from` copied to every `image` tag, digest unchanged, nothing recaptured. */
export async function promote(inputs: Inputs, log: Logger): Promise<void> {
  const phases = new Phases(inputs.quiet);
  const target = inputs.targets[0];
  if (!target) throw new InputError('promote needs image (or --to): where to copy the image');
  const { source, reference, name } = await openSource(inputs, log);
  const dest = await connect(target, {
    credentials: credentialInputs(inputs),
    insecureRegistry: inputs.insecureRegistry,
    access: 'push',
    log,
  });
  const tags = inputs.targets.map((t) => t.tag!);
  const copied = await phases.run('promote', 'Promote', () =>
    copyImage(source, reference, dest, tags, { concurrency: inputs.concurrency, log }),
  );
  if (inputs.from?.digest && copied.digest !== inputs.from.digest)
    throw new RegistryError(`promote: ${name} resolved to ${copied.digest}`);
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
    uploaded: dest.uploaded,
  });
}

/** `pull`: the image at `from` written to the OCI layout at `output`, every blob verified. */
export async function pull(inputs: Inputs, log: Logger): Promise<void> {
  const phases = new Phases(inputs.quiet);
  const { source, reference, name } = await openSource(inputs, log);
  const layout = await LayoutWriter.create(inputs.output);
  try {
    const pulled = await phases.run('pull', 'Pull', () =>
      pullToLayout(source, reference, layout, inputs.from?.tag ?? 'latest', {
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
  inputs: Inputs,
  phases: Phases,
  result: Omit<Result, 'base' | 'changes' | 'durationMs'>,
): Promise<void> {
  await publishResult(
    { ...result, base: null, changes: null, durationMs: Date.now() - phases.startedAt },
    { metadataFile: inputs.metadataFile, quiet: inputs.quiet },
  );
}

/** The image promote or pull reads: a repository (credentials as for a push), or an OCI layout. */
async function openSource(
  inputs: Inputs,
  log: Logger,
): Promise<{ source: ImageSource; reference: string; name: string }> {
  if (inputs.fromLayout) {
    const { dir, tag } = inputs.fromLayout;
    return { source: layoutSource(dir), reference: tag, name: `oci:${dir}:${tag}` };
  }
  const from = inputs.from!;
  // A pull's only registry is its source; a promote's inputs are for its target.
  const targetRegistry = inputs.mode === 'pull' ? from.registry : inputs.targets[0]?.registry;
  const repo = await connect(from, {
    ...credentialsFor(from, { inputs, targetRegistry }),
    access: 'pull',
    log,
  });
  return { source: registrySource(repo), reference: from.digest ?? from.tag!, name: format(from) };
}
