import type { CommonInputs } from '../inputs/index.js';
import { LayoutWriter } from '../layout/layout.js';
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
    finish: async (image, tags) => {
      await layout.putJson(image.config);
      await layout.putJson(image.manifest);
      await layout.finish(image.manifest.descriptor, tags);
    },
    abort: () => layout.abort(),
    uploaded: () => 0,
    images: () => [],
    where: () => ({ output: inputs.output }),
    complete: () => {},
  };
}
