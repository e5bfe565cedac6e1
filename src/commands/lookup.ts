import type { LookupInputs } from '../inputs/index.js';
import type { Logger } from '../log.js';
import { readExisting, satisfies } from '../content/existing.js';
import { connect } from '../registry/connect.js';
import { format } from '../registry/reference.js';
import { credentialInputs } from '../destinations/registry.js';
import { setOutputs } from '../runner.js';
import { formatDuration } from '../util/format.js';

/**
 * `lookup`: whether the first `image` tag holds an image made from `key` (when given) and younger
 * than `max-age` (when given), so a workflow can skip its setup steps and the snapshot on a hit.
 * Reads the tag's manifest (and its config only when the manifest does not say when the image was
 * made); writes nothing. A missing tag is a miss; a registry that cannot be reached, or refuses the
 * credentials, is an error: a miss would rebuild for nothing, a hit would skip a build wrongly.
 */
export async function lookup(inputs: LookupInputs, log: Logger): Promise<void> {
  const { target } = inputs;
  const repo = await connect(target, {
    // The credential inputs are meant for the image looked at: it is the target of the snapshot.
    credentials: { ...credentialInputs(inputs), isTarget: true },
    insecureRegistry: inputs.insecureRegistry,
    access: 'pull',
    log,
  });
  const existing = await readExisting(repo, target.tag);
  const want = { key: inputs.key || undefined, maxAgeMs: inputs.maxAge || undefined };
  const hit = !!existing && satisfies(existing, want);
  log.info(`lookup ${format(target)}: ${hit ? 'hit' : 'miss'}: ${why(existing, want)}`);
  setOutputs({
    hit,
    digest: existing?.digest ?? '',
    created: existing?.created ?? '',
    key: existing?.key ?? '',
  });
}

function why(
  existing: Awaited<ReturnType<typeof readExisting>>,
  want: { key?: string; maxAgeMs?: number },
): string {
  if (!existing) return 'no image at this tag';
  const parts = [`it holds ${existing.digest}`];
  if (want.key)
    parts.push(
      existing.key === want.key
        ? 'with this key'
        : existing.key === undefined
          ? 'with no key'
          : `with another key (${existing.key})`,
    );
  if (want.maxAgeMs) {
    const created = existing.created ? Date.parse(existing.created) : NaN;
    parts.push(
      Number.isNaN(created)
        ? 'which does not say when it was made'
        : `created ${existing.created}, ${Date.now() - created < want.maxAgeMs ? 'younger' : 'older'} than max-age ${formatDuration(want.maxAgeMs)}`,
    );
  }
  return parts.join(', ');
}
