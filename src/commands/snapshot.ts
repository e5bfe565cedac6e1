import { access, lstat, readFile, stat } from 'node:fs/promises';
import { constants } from 'node:fs';
import path from 'node:path';
import { InputError, type SnapshotInputs } from '../inputs/index.js';
import type { Logger } from '../log.js';
import { show } from '../log.js';
import { Progress } from '../progress.js';
import { inActions, maskSecret, savedState } from '../runner.js';
import { describeExclusions, whereTheBytesAre, type Compaction, type SnapshotReport } from '../summary.js';
import { formatBytes, formatDuration } from '../util/format.js';
import { isRoot, NeedsRootError, returnToCaller } from '../privileges.js';
import type { Exclusion, WalkResult } from '../walk/walk.js';
import { scrubGitConfigs } from '../walk/secrets.js';
import { findChanges, type Changes } from '../diff/changes.js';
import { checkUpper } from '../diff/overlay.js';
import { partition } from '../layer/partition.js';
import { writeMarkerLayer } from '../image/marker-layer.js';
import { buildImage, type BuiltImage, type NewLayer } from '../image/build.js';
import type { Manifest } from '../content/oci.js';
import { createdTime } from '../image/created.js';
import { DOCKER_LAYERS, layersMadeBySnapshots, planBudget, type BudgetPlan } from '../image/budget.js';
import { persistedEnv, type PersistedEnv } from '../image/env.js';
import { MARKER_PATH, MARKER_REWRITTEN, markerFor, markerPlaces, parseMarker } from '../image/marker.js';
import { format, groupTargets, parseReference } from '../registry/reference.js';
import { baseFromMarker, resolveBase, type BaseImage } from '../registry/base.js';
import { artifactFor, ArtifactType, type Artifact, type Document } from '../attest/artifact.js';
import { slsaProvenance } from '../attest/provenance.js';
import { cyclonedxSbom } from '../attest/sbom.js';
import type { Inventory } from '../inventory/inventory.js';
import { LayerCache, layerCacheDirs } from '../registry/layer-cache.js';
import type { Destination } from '../destinations/destination.js';
import { openLayout, snapshotTags } from '../destinations/layout.js';
import type { ExistingImage, UpToDate } from '../content/existing.js';
import { credentialInputs, openRegistry } from '../destinations/registry.js';
import { compact } from './compact.js';
import { writeLayers } from './layers.js';
import { Phases, publishResult } from './publish.js';
import { readSetup } from './setup.js';
import { inventoryFileFor } from '../inventory/record.js';

/**
 * `snapshot`: the tree at `root` (what changed since its base image, or all of it) as an image on top
 * of the base's layers, pushed to `image` or written to the layout at `output`.
 */
export async function snapshot(inputs: SnapshotInputs, log: Logger): Promise<void> {
  await checkRoot(inputs.root);
  if (inputs.upper) await checkUpper(inputs.upper, inputs.root);
  const destination = inputs.dryRun ? await openLayout(inputs) : await openRegistry(inputs, log);
  try {
    if (!(await skipWhenUpToDate(inputs, destination, log))) await capture(inputs, destination, log);
  } catch (err) {
    await destination.abort().catch(() => {});
    throw err;
  }
  await returnToCaller(
    [inputs.dryRun ? inputs.output : '', inputs.metadataFile, path.dirname(LayerCache.defaultPath())],
    log,
  );
  // Last: a registry of several that failed fails the run, once what was written is published.
  destination.complete();
}

/**
 * With `key` or `max-age`: when every tag already holds one image with this key, young enough,
 * nothing is captured or written (a layout's staging is removed); the outputs name that image,
 * `skipped=true`, and the summary says why. False when a snapshot is needed.
 */
async function skipWhenUpToDate(
  inputs: SnapshotInputs,
  destination: Destination,
  log: Logger,
): Promise<boolean> {
  if (!inputs.key && !inputs.maxAge) return false;
  const want = { key: inputs.key || undefined, maxAgeMs: inputs.maxAge || undefined };
  const existing = await destination.upToDate(want);
  const tags = snapshotTags(inputs);
  if (!existing) {
    log.info(
      `${describeWant(want)}: not every tag of ${destination.name} (${tags.join(', ')}) holds such an image; capturing`,
    );
    return false;
  }
  await destination.abort();
  const reason = `${destination.name} (${tags.join(', ')}) already holds ${existing.digest}${describeHeld(existing, want)}: nothing captured`;
  log.info(reason);
  await publishResult(
    {
      operation: 'snapshot',
      digest: existing.digest,
      manifest: existing.manifest,
      // Every target holds it: each is named, though none was written.
      images: destination.kind === 'registry' ? inputs.targets.map(format) : [],
      tags: [],
      where: destination.where(existing.digest),
      uploaded: 0,
      base: null,
      changes: null,
      durationMs: 0,
      key: existing.key ?? null,
      skipped: true,
      // What this run attached: nothing (the image's earlier attestations stay where they are).
      referrers: [],
    },
    { metadataFile: inputs.metadataFile, quiet: inputs.quiet, skipped: reason },
  );
  return true;
}

/** What an existing image must be to stand for this snapshot, for the log. */
function describeWant(want: UpToDate): string {
  const parts = [
    ...(want.key ? [`key ${want.key}`] : []),
    ...(want.maxAgeMs ? [`younger than max-age ${formatDuration(want.maxAgeMs)}`] : []),
  ];
  return parts.join(', ');
}

/** Why the image found satisfies `want`: its key, and when it was made. */
function describeHeld(existing: ExistingImage, want: UpToDate): string {
  const parts = [
    ...(want.key ? [`with key ${existing.key}`] : []),
    ...(want.maxAgeMs
      ? [`created ${existing.created}, younger than max-age ${formatDuration(want.maxAgeMs)}`]
      : []),
  ];
  return parts.length ? ` ${parts.join(', ')}` : '';
}

/** The phases of a snapshot, each a log group: base image, changes, base layers, layers, push or layout. */
async function capture(inputs: SnapshotInputs, destination: Destination, baseLog: Logger): Promise<void> {
  const terminal = !inActions() && process.stderr.isTTY ? process.stderr : null;
  const progress = new Progress(baseLog, terminal, !inputs.quiet);
  const log = progress.wrap(baseLog);
  const phases = new Phases(inputs.quiet, () => progress.stop());
  const pushes = destination.kind === 'registry';

  const found = await phases.run('base image', 'Base image', () => findBase(inputs, log));
  const budget = layerBudget(found, inputs.maxLayers, log);
  const { base, changes, compaction } = await phases.run('walk and changes', 'Changes', () => {
    progress.start('walk');
    return changesOf(inputs, found, budget, destination, progress, log);
  });
  const env = inputs.persistEnv ? environment(inputs, base, log) : null;
  // Read once: the report's "What setup changed", and report.inventory for anything else that lists the image's software.
  const { inventory, setup } = await phases.run('inventory', 'What setup changed', () =>
    readSetup({
      root: inputs.root,
      baseline: savedState('baseline') || inputs.baseline,
      overlay: changes.overlay,
      baseEnv: base?.config.config?.Env,
      log,
    }),
  );

  if (base) await phases.run('base layers', 'Base layers', () => destination.addBase(base));
  const capturedBytes = changes.entries.contentBytes();
  const { layers, rows } = await phases.run(
    'layers',
    pushes ? 'Layers (compress and upload)' : 'Layers',
    () => {
      progress.start('layers', capturedBytes);
      return writeLayers({
        root: inputs.root,
        entries: changes.entries,
        plans: partition(changes.entries, inputs.layerSize, budget.newLayers),
        compression: inputs.compression,
        level: inputs.compressionLevel,
        concurrency: inputs.concurrency,
        destination,
        counters: progress.counters,
        log,
      });
    },
  );
  const created = createdTime(changes.entries, base?.config.created);
  const imageEnv = env ? { env: env.env } : {};
  // A tree with an /etc is a system: it carries the marker that lets the next snapshot find its base.
  if (await isDirectory(path.join(inputs.root, 'etc'))) {
    const markerLayer = await addMarker(
      inputs,
      destination,
      buildImage({ base, layers, created, ...imageEnv }),
      created,
      log,
    );
    layers.push(markerLayer);
    rows.push({
      label: `/${MARKER_PATH}`,
      entries: 2, // with /etc
      bytes: 0,
      compressed: markerLayer.descriptor.size,
      how: pushes ? 'uploaded' : 'written',
    });
  }

  const image = buildImage({ base, layers, created, ...imageEnv, ...sourceAnnotations(), key: inputs.key });
  const tags = snapshotTags(inputs);
  const artifacts =
    inputs.sbom || inputs.provenance
      ? await phases.run('attestations', 'Attestations', () =>
          attestations(
            inputs,
            destination,
            image,
            { base, inventory, created, startedAt: phases.startedAt },
            log,
          ),
        )
      : [];
  const attached = await phases.run(pushes ? 'push' : 'layout', pushes ? 'Push' : 'Layout', () =>
    destination.finish(image, tags, artifacts),
  );

  // What was written: a registry of several that failed is reported by destination.complete().
  const images = destination.images(tags);
  const written = pushes ? [...new Set(images.map((i) => parseReference(i).tag!))] : tags;
  const digest = image.manifest.descriptor.digest;
  const manifest = JSON.parse(image.manifest.bytes.toString()) as Manifest;
  const size = manifest.layers.reduce((n, l) => n + l.size, 0) + image.config.descriptor.size;
  const uploaded = destination.uploaded();
  log.info(
    `${destination.name} ${digest} (${written.join(', ')}), ${manifest.layers.length} layers (${layers.length} new), ${formatBytes(size)}, in ${(phases.totalMs / 1000).toFixed(1)} s`,
  );
  const report: SnapshotReport = {
    attestations: attached.map((a) => ({ kind: a.kind, digest: a.manifest.descriptor.digest })),
    destination: destination.name,
    pushed: pushes,
    digest,
    tags: written,
    base: base ? { name: base.name, digest: base.digest, layers: base.layers.length } : null,
    changes: {
      method: changes.method,
      reason: changes.reason,
      changed: changes.changed,
      deleted: changes.deleted,
    },
    layers: rows,
    size,
    uploaded: pushes ? uploaded : rows.reduce((n, r) => n + r.compressed, 0),
    captured: { entries: changes.entries.length, bytes: capturedBytes },
    ...whereTheBytesAre(changes.entries),
    excluded: describeExclusions(changes.excluded, changes.scan?.sockets ?? []),
    env: env ? { kept: env.kept, masked: env.masked } : null,
    phases: phases.timings,
    ...(compaction ? { compaction } : {}),
    setup,
    inventory,
  };
  await publishResult(
    {
      operation: 'snapshot',
      digest,
      manifest: image.manifest.bytes,
      images,
      tags: written,
      where: destination.where(digest),
      uploaded,
      base: base ? { name: base.name, digest: base.digest || null } : null,
      changes: changes.method,
      durationMs: phases.totalMs,
      key: inputs.key || null,
      skipped: false,
      referrers: attached.map((a) => a.descriptor),
    },
    { metadataFile: inputs.metadataFile, quiet: inputs.quiet, report },
  );
}

/**
 * The SBOM (of every package the tree holds: the base image's and the job's) and the provenance to
 * attach to the image, as the inputs ask. A tree whose packages cannot be read gets no SBOM, with a
 * warning: the image itself is what the run is for.
 */
async function attestations(
  inputs: SnapshotInputs,
  destination: Destination,
  image: BuiltImage,
  run: { base: BaseImage | undefined; inventory: Inventory; created: string; startedAt: number },
  log: Logger,
): Promise<Artifact[]> {
  const subject = image.manifest.descriptor;
  // The image's name in the documents: the first `image` line's repository (the same bytes go everywhere).
  const first = inputs.targets[0];
  const repository = destination.kind === 'registry' && first ? `${first.registry}/${first.repository}` : '';
  const documents: Document[] = [];
  if (inputs.sbom) {
    try {
      const { inventory } = run;
      const bytes = cyclonedxSbom(inventory, { repository, digest: subject.digest, created: run.created });
      documents.push({ kind: 'SBOM', artifactType: ArtifactType.cyclonedx, bytes });
      log.info(`SBOM: ${inventory.packages.length} packages (CycloneDX 1.6)`);
    } catch (err) {
      log.warn(`no SBOM of ${inputs.root}: ${(err as Error).message}`);
    }
  }
  if (inputs.provenance) {
    const bytes = slsaProvenance({
      repository,
      digest: subject.digest,
      base: run.base ? { name: run.base.name, digest: run.base.digest } : null,
      startedOn: new Date(run.startedAt).toISOString(),
      finishedOn: new Date().toISOString(),
      env: process.env,
    });
    documents.push({ kind: 'provenance', artifactType: ArtifactType.inToto, bytes });
    if (!process.env.GITHUB_REPOSITORY)
      log.info('provenance: not in a GitHub Actions workflow: no repository, commit or run to name');
  }
  return documents.map((d) => artifactFor(subject, d, run.created));
}

/**
 * How many layers this snapshot may add, and how many of the base's to merge first (see planBudget);
 * a warning when the base alone leaves no room.
 */
function layerBudget(base: BaseImage | undefined, maxLayers: number, log: Logger): BudgetPlan {
  const baseLayers = base?.layers.length ?? 0;
  const made = base ? layersMadeBySnapshots(baseLayers, base.config.history ?? []) : 0;
  const plan = planBudget({ baseLayers, madeBySnapshots: made, maxLayers });
  if (maxLayers > DOCKER_LAYERS)
    log.warn(
      `max-layers ${maxLayers}: Docker and podman refuse to run images of more than about ${DOCKER_LAYERS} layers; images this large may not start there`,
    );
  const total = baseLayers - plan.merge + 2;
  if (total > maxLayers)
    log.warn(
      `base image ${base!.name} has ${baseLayers - made} layers of its own: with a new layer and the marker the image has ${total}, over max-layers ${maxLayers}${total > DOCKER_LAYERS ? `, and Docker and podman refuse to run images of more than about ${DOCKER_LAYERS} layers` : ''}; use a base image with fewer layers`,
    );
  return plan;
}

/**
 * The walk and what changed since the base (overlay, baseline or everything), logged; when the budget
 * says so, the base's top layers merged into the changes (see compact).
 */
async function changesOf(
  inputs: SnapshotInputs,
  base: BaseImage | undefined,
  budget: BudgetPlan,
  destination: Destination,
  progress: Progress,
  log: Logger,
): Promise<{ base: BaseImage | undefined; changes: Changes; compaction?: Compaction }> {
  const merge = base && budget.merge > 0 ? budget.merge : 0;
  let found = await findChanges({
    mode: inputs.changes,
    baseline: savedState('baseline') || inputs.baseline,
    upper: inputs.upper,
    hasBase: !!base,
    wholeWalk: merge > 0,
    scan: {
      root: inputs.root,
      exclude: inputs.exclude,
      include: inputs.include,
      ownPaths: [
        ...destination.ownPaths,
        inputs.baseline,
        inputs.baseline && inventoryFileFor(inputs.baseline),
        ...layerCacheDirs(),
      ].filter(Boolean),
      rewritten: [MARKER_REWRITTEN],
      log,
      counters: progress.counters,
    },
    log,
  });
  if (found.unreadable.length && !isRoot()) throw new NeedsRootError(found.unreadable);
  if (found.scan) describeScan(found.scan, inputs.root, log);
  warnLeftOut(found.excluded, log);
  log.info(`changes: ${found.method}: ${found.reason}`);
  if (found.method !== 'full') log.info(`${found.changed} entries new or changed, ${found.deleted} deleted`);
  let compaction: Compaction | undefined;
  if (base && merge > 0) {
    ({
      base,
      changes: found,
      compaction,
    } = await compact({
      base,
      merge,
      changes: found,
      root: inputs.root,
      maxLayers: inputs.maxLayers,
      log,
    }));
  }
  await scrubGitConfigs(found.entries, inputs.root, log, maskSecret);
  return { base, changes: found, compaction };
}

/** The marker layer: this image's own layers and config, for the next snapshot of a sandbox started from it. */
async function addMarker(
  inputs: SnapshotInputs,
  destination: Destination,
  image: BuiltImage,
  created: string,
  log: Logger,
): Promise<NewLayer> {
  // One place per repository, its first tag: the same marker, and digest, in every registry.
  const places = groupTargets(inputs.targets).flatMap((g) =>
    g.repositories.map((r) => ({ repository: r.name, tag: r.targets[0].tag })),
  );
  const marker = markerFor(image, places, created);
  const layer = await writeMarkerLayer(
    marker,
    { root: inputs.root, compression: inputs.compression, level: inputs.compressionLevel, log },
    destination.sink('the marker layer'),
    (d) => destination.exists(d),
  );
  log.info(`marker layer /${MARKER_PATH}: ${formatBytes(layer.descriptor.size)} ${layer.descriptor.digest}`);
  return layer;
}

/** The base image: named by the user or the platform, else found through the root's marker, else none. */
async function findBase(inputs: SnapshotInputs, log: Logger): Promise<BaseImage | undefined> {
  const options = {
    credentials: credentialInputs(inputs),
    targetRegistry: inputs.targets[0]?.registry,
    insecureRegistry: inputs.insecureRegistry,
    log,
  };
  if (inputs.baseImage) return resolveBase({ ref: inputs.baseImage, ...options });
  const markerText = await readFile(path.join(inputs.root, MARKER_PATH), 'utf8').catch(() => null);
  const marker = markerText === null ? null : parseMarker(markerText);
  // A dry run's marker names no repository: there is nothing to take its layers from.
  if (marker && markerPlaces(marker).length) return baseFromMarker(marker, options);
  log.info(
    `no base image: no base-image input, no SNAPSHOT_BASE_IMAGE, no /${MARKER_PATH} in ${inputs.root}`,
  );
  return undefined;
}

/** The image's `Env`: the base's, with this job's PATH and the variables its steps set. */
function environment(inputs: SnapshotInputs, base: BaseImage | undefined, log: Logger): PersistedEnv {
  const secrets = [inputs.token, inputs.password].filter(Boolean);
  const env = persistedEnv(process.env, base?.config.config?.Env ?? [], inputs.envMask, secrets);
  log.info(`environment kept in the image: ${env.kept.join(', ') || 'nothing new'}`);
  if (env.masked.length)
    log.info(`environment left out: ${env.masked.map((m) => `${m.name} (${m.reason})`).join(', ')}`);
  return env;
}

/** One warning per credential or runner directory left out by default: the user may want it kept. */
function warnLeftOut(excluded: Exclusion[], log: Logger): void {
  for (const e of excluded) {
    if (!e.warn) continue;
    log.warn(
      `left out /${show(e.path)}: ${e.reason.replace(/^credentials: /, '')}; add it to include to keep it`,
    );
  }
}

function describeScan(scan: WalkResult, root: string, log: Logger): void {
  const bytes = scan.entries.contentBytes();
  log.info(`${scan.entries.length} entries, ${formatBytes(bytes)} in ${root}`);
  for (const line of describeExclusions(scan.excluded, scan.sockets)) log.info(`left out: ${line}`);
  if (scan.sockets.length)
    log.warn(`${scan.sockets.length} socket(s) skipped: sockets cannot be stored in an image`);
}

async function checkRoot(root: string): Promise<void> {
  const denied = () =>
    new InputError(
      `root ${root} cannot be read: permission denied; capturing it needs read access to the whole tree (run the step as root or with sudo)`,
    );
  const st = await stat(root).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'EACCES') throw denied();
    throw new InputError(`root ${root} cannot be read: ${err.code ?? err.message}`);
  });
  if (!st.isDirectory()) throw new InputError(`root ${root} is not a directory`);
  // Found now, before a layout is started, rather than as an errno from the walk.
  await access(root, constants.R_OK | constants.X_OK).catch(() => {
    throw denied();
  });
}

async function isDirectory(p: string): Promise<boolean> {
  return lstat(p).then(
    (st) => st.isDirectory(),
    () => false,
  );
}

/** Where the image was built from, when a workflow built it (`org.opencontainers.image.source`/`.revision`). */
function sourceAnnotations(): { source?: string; revision?: string } {
  const { GITHUB_SERVER_URL: server, GITHUB_REPOSITORY: repo, GITHUB_SHA: sha } = process.env;
  return {
    ...(server && repo ? { source: `${server}/${repo}` } : {}),
    ...(sha ? { revision: sha } : {}),
  };
}
