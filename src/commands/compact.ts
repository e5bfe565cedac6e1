import { HashTap } from '../content/blob.js';
import type { Logger } from '../log.js';
import type { Changes } from '../diff/changes.js';
import { recapture, TouchedPaths } from '../diff/recapture.js';
import { listLayer, piped } from '../layer/listing.js';
import { readXattrsOf } from '../walk/walk.js';
import { historyOfFirstLayers } from '../image/budget.js';
import type { BaseImage } from '../registry/base.js';
import type { Compaction } from '../summary.js';
import { describeCompaction } from '../summary.js';

/**
 * Merges the base's top `merge` layers (made by earlier snapshots) into this snapshot's: the paths
 * they touched, read from their tar listings, are captured again from the live tree with this run's
 * changes, on top of the layers below them, which stay as they are. Whiteouts keep deleted paths
 * deleted; an opaque directory is captured whole. What the tree holds now is what those layers and
 * the changes amount to, so the image unpacks to the same tree with fewer layers.
 */
export async function compact(opts: {
  base: BaseImage;
  /** How many of the base's top layers to merge. */
  merge: number;
  changes: Changes;
  root: string;
  maxLayers: number;
  log: Logger;
}): Promise<{ base: BaseImage; changes: Changes; compaction: Compaction }> {
  const { base, merge, changes, root, maxLayers, log } = opts;
  const scan = changes.scan;
  if (!scan) throw new Error('compaction needs a walk of the whole tree');
  const keep = base.layers.length - merge;
  const merged = base.layers.slice(keep);
  const touched = new TouchedPaths();
  for (const layer of merged) {
    const blob = await base.repository.openBlob(layer.digest);
    const hashing = new HashTap();
    await listLayer(piped(blob, hashing), layer.mediaType, (name) => touched.addName(name));
    const digest = hashing.digest();
    if (digest !== layer.digest)
      throw new Error(`layer ${layer.digest} of ${base.name} read as ${digest}: not merged`);
  }
  touched.addEntries(changes.entries);
  // A baseline walk left the xattrs of unchanged entries unread: those taken again need theirs.
  const set = await recapture(scan.entries, touched, scan, (taken) =>
    scan.xattrsRead ? Promise.resolve() : readXattrsOf(root, scan.entries, taken, log),
  );
  const compaction: Compaction = {
    merged: merge,
    bytes: merged.reduce((n, l) => n + l.size, 0),
    kept: keep,
    paths: touched.size,
    maxLayers,
  };
  log.info(describeCompaction(compaction));
  return {
    base: {
      ...base,
      // No longer that image: a part of it, under this snapshot's layers.
      digest: '',
      layers: base.layers.slice(0, keep),
      diffIds: base.diffIds.slice(0, keep),
      config: { ...base.config, history: historyOfFirstLayers(base.config.history ?? [], keep) },
    },
    changes: { ...changes, ...set },
    compaction,
  };
}
