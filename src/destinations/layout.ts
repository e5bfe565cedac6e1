import type { CommonInputs } from '../inputs/index.js';
import { LayoutWriter } from '../layout/layout.js';
import { storedManifest } from '../attest/artifact.js';
import type { Destination } from './destination.js';

/** The dry run's OCI image layout at `output`: every blob written, base layers included. */
export async function openLayout(inputs: CommonInputs): Promise<Destination> {
  const layout = await LayoutWriter.create(inputs.output);
  return {
    name: inputs.output,
    kind: 'layout',
    ownPaths: layout.ownPaths,
    freshImage: () => null,
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
  };
}
