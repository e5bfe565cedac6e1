import type { Compression } from '../layer/compress.js';
import type { LayerPlan } from '../layer/partition.js';
import { writeLayer } from '../layer/write.js';
import { DISCARD } from '../content/blob.js';
import { fingerprint, FINGERPRINT_ANNOTATION } from '../layer/fingerprint.js';
import type { NewLayer } from '../image/build.js';
import type { EntryTable } from '../walk/entries.js';
import { RestartBlobError } from '../registry/errors.js';
import { waitBeforeRetry } from '../registry/retry.js';
import type { Destination } from '../destinations/destination.js';
import type { Counters } from '../progress.js';
import type { LayerRow } from '../summary.js';
import type { Logger } from '../log.js';
import { allHeaviestFirst } from '../util/limit.js';
import { formatBytes } from '../util/format.js';

/** Times one layer may start over from the tree after its upload session was lost. */
const MAX_LAYER_RESTARTS = 5;

export interface LayersInput {
  root: string;
  entries: EntryTable;
  plans: LayerPlan[];
  compression: Compression;
  level: number;
  /** Layers compressed and sent at once; zlib runs on the pool, so cores fill. */
  concurrency: number;
  destination: Destination;
  counters: Counters;
  log: Logger;
}

/**
 * Every planned layer, written to the destination or reused from it by fingerprint, largest first;
 * with one summary row each, in plan order.
 */
export async function writeLayers(input: LayersInput): Promise<{ layers: NewLayer[]; rows: LayerRow[] }> {
  const { plans, concurrency } = input;
  const written = await allHeaviestFirst(
    plans.map((p) => p.bytes),
    concurrency,
    (i) => writeOneLayer(input, plans[i], `layer ${i + 1}/${plans.length} ${plans[i].label}`),
  );
  return { layers: written.map((w) => w.layer), rows: written.map((w) => w.row) };
}

/** One layer: reused when the destination has its fingerprint, else written, restarted if its session is lost. */
async function writeOneLayer(
  input: LayersInput,
  plan: LayerPlan,
  name: string,
): Promise<{ layer: NewLayer; row: LayerRow }> {
  const { root, entries, compression, level, destination, log } = input;
  const fp = fingerprint(entries, plan.indices, compression, level);
  const row = (how: string, compressed: number): LayerRow => ({
    label: plan.label,
    entries: plan.indices.length,
    bytes: entries.contentBytes(plan.indices),
    compressed,
    how,
  });
  const reused = await destination.reuse(fp);
  if (reused) {
    const { layer, how } = reused;
    log.info(`${name}: unchanged, ${how} in the registry (${layer.descriptor.digest.slice(0, 19)})`);
    return { layer: { ...layer, comment: plan.label }, row: row(`reused, ${how}`, layer.descriptor.size) };
  }
  const tree = { root, entries, indices: plan.indices, compression, level, log };
  for (let attempt = 1; ; attempt++) {
    try {
      const sink = destination.sink(name);
      // A monolithic upload needs the digest before its first byte: compute it in a first pass.
      const expected = sink.needsDigestFirst?.() ? (await writeLayer(tree, DISCARD)).descriptor : undefined;
      const r = await writeLayer({ ...tree, counters: input.counters }, sink, expected);
      log.info(
        `${name}: ${r.entries} entries, ${formatBytes(r.uncompressedSize)} → ${formatBytes(r.descriptor.size)} ${r.descriptor.digest}`,
      );
      const descriptor = { ...r.descriptor, annotations: { [FINGERPRINT_ANNOTATION]: fp } };
      const layer = { descriptor, diffId: r.diffId, comment: plan.label };
      destination.wrote(fp, layer);
      return { layer, row: row(destination.kind === 'registry' ? 'uploaded' : 'written', descriptor.size) };
    } catch (err) {
      if (!(err instanceof RestartBlobError) || attempt >= MAX_LAYER_RESTARTS) throw err;
      log.warn(`${name}: ${err.message}; starting this layer over`);
      await waitBeforeRetry(attempt, name);
    }
  }
}
