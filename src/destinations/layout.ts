import { existsSync } from 'node:fs';
import path from 'node:path';
import type { SnapshotInputs } from '../inputs/index.js';
import { upToDateIn } from '../content/existing.js';
import { LayoutWriter } from '../layout/layout.js';
import { layoutSource } from '../layout/reader.js';
import { storedManifest } from '../attest/artifact.js';
import type { Destination } from './destination.js';

/** The dry run's OCI image layout at `output`: every blob written, base layers included. */
export async function openLayout(inputs: SnapshotInputs): Promise<Destination> {
  const layout = await LayoutWriter.create(inputs.output);
  return {
    name: inputs.output,
    kind: 'layout',
    ownPaths: layout.ownPaths,
    // The layout already at output (an earlier dry run's), read before this run replaces it.
    upToDate: async (want) =>
      existsSync(path.join(inputs.output, 'index.json'))
        ? upToDateIn(layoutSource(inputs.output), snapshotTags(inputs), want)
        : null,
    addBase: (base) =>
      layout.addBlobs((digest) => base.repository.openBlob(digest), base.layers, inputs.concurrency),
    reuse: async () => undefined,
    exists: async () => false,
    wrote: () => {},
    sink: () => layout,
    // The artifacts are written with the image: the layout appears whole, attestations included.
    finish: async (image, tags, artifacts) => {
      await layout.putJson(image.config);
      await layout.putJson(image.manifest);
      for (const artifact of artifacts) {
        for (const blob of artifact.blobs) await layout.putJson(blob);
        await layout.putReferrers(image.manifest.descriptor.digest, [storedManifest(artifact)]);
      }
      await layout.finish(image.manifest.descriptor, tags);
      return artifacts;
    },
    abort: () => layout.abort(),
    uploaded: () => 0,
    images: () => [],
    where: () => ({ output: inputs.output }),
    complete: () => {},
  };
}

/** The tags a snapshot writes: those of `image`, else `latest`. */
export function snapshotTags(inputs: SnapshotInputs): string[] {
  return inputs.targets.length ? inputs.targets.map((t) => t.tag) : ['latest'];
}
