import * as core from '@actions/core';
import { access, stat } from 'node:fs/promises';
import { constants } from 'node:fs';
import { getInputs, helpText, InputError, secretValues, wantsHelp, type Inputs } from './inputs.js';
import { reportFailure } from './failure.js';
import { interruptedRunWrites } from './interrupt.js';
import { describeExclusions, formatBytes, inActions, makeLogger, setOutputs } from './report.js';
import type { Logger } from './log.js';
import type { EntryTable } from './walk/entries.js';
import type { Exclusion, WalkResult } from './walk/walk.js';
import { findChanges } from './diff/changes.js';
import { checkUpper } from './diff/overlay.js';
import { baseFromMarker, resolveBase, type BaseImage } from './registry/base.js';
import { MARKER_PATH, markerFor, parseMarker } from './image/marker.js';
import { writeMarkerLayer } from './layer/marker-layer.js';
import type { Manifest } from './image/oci.js';
import { lstat, readFile } from 'node:fs/promises';
import path from 'node:path';
import { partition, type LayerPlan } from './layer/partition.js';
import { PermissionError, writeLayer } from './layer/write.js';
import { DISCARD, type BlobSink } from './content/blob.js';
import { fingerprint, FINGERPRINT_ANNOTATION } from './layer/fingerprint.js';
import { buildImage, rfc3339, type BuiltImage, type NewLayer } from './image/build.js';
import { LayoutWriter } from './layout/layout.js';
import { limiter } from './util/limit.js';
import { format } from './registry/reference.js';
import { RegistryError, RestartBlobError } from './registry/errors.js';
import { RegistryDestination } from './registry/push.js';
import { waitBeforeRetry } from './registry/retry.js';
import { connect } from './registry/connect.js';
import { copyImage } from './content/copy.js';
import type { ImageSource } from './content/storage.js';
import { registrySource } from './registry/repository.js';
import { credentialsFor } from './registry/credentials.js';
import { pullToLayout } from './layout/pull.js';
import { layoutSource } from './layout/reader.js';
import { describeManifest, writeMetadata } from './metadata.js';
import { persistedEnv, type PersistedEnv } from './image/env.js';
import { scrubGitConfigs } from './walk/secrets.js';
import { Progress } from './progress.js';
import {
  markdownReport,
  textReport,
  whereTheBytesAre,
  type LayerRow,
  type SnapshotReport,
} from './summary.js';
import { show } from './log.js';
import { isRoot, NeedsRootError, rerunUnderSudo, returnToCaller } from './privileges.js';
import { LayerCache, layerCacheDirs } from './registry/layer-cache.js';

const CANCELLED = new Error('cancelled after another layer failed');

/** Times one layer may start over from the tree after its upload session was lost. */
const MAX_LAYER_RESTARTS = 5;

/** Where the image goes: an OCI layout on disk (dry run) or a registry. */
interface Destination {
  /** Makes the base image's layers present there (skipped, mounted or copied; a layout gets them all). */
  addBase(base: BaseImage): Promise<void>;
  /** A layer already there (or mounted), found by fingerprint: reused without reading the tree. */
  reuse(fingerprint: string): Promise<{ layer: NewLayer; how: string } | undefined>;
  /** Whether a blob is already there. */
  exists(digest: string): Promise<boolean>;
  /** A layer was written under this fingerprint. */
  wrote(fingerprint: string, layer: NewLayer): void;
  /** `label` names the blob in messages ("layer 2/5 /usr"). */
  sink(label?: string): BlobSink;
  finish(image: BuiltImage, tags: string[]): Promise<void>;
  abort(): Promise<void>;
  /** Paths the walk must leave out because the destination writes there. */
  ownPaths: string[];
  /** A registry (layers are uploaded) rather than a layout (layers are written). */
  pushes: boolean;
}

export async function run(argv: string[]): Promise<void> {
  if (wantsHelp(argv)) {
    process.stdout.write(helpText() + '\n');
    return;
  }
  let destination: Destination | undefined;
  let log = makeLogger({ quiet: false });
  try {
    // The runner masks these in every later line; outside Actions `::add-mask::` would print them.
    if (inActions()) for (const secret of secretValues(argv)) core.setSecret(secret);
    const inputs = getInputs(argv);
    log = makeLogger({ quiet: inputs.quiet });
    const writesLayout = inputs.mode === 'pull' || (inputs.mode === 'snapshot' && inputs.dryRun);
    interruptedRunWrites({ writesLayout, output: inputs.output });
    if (inputs.mode !== 'snapshot') return await transfer(inputs, log);
    await checkRoot(inputs.root);
    if (inputs.upper) await checkUpper(inputs.upper, inputs.root);
    const registry = inputs.dryRun ? undefined : await openRegistry(inputs, log);
    if (registry && inputs.maxAge) {
      const fresh = registry.freshEnough(inputs.maxAge);
      if (fresh) {
        log.info(`${registry.image}:${inputs.targets[0].tag} is younger than max-age: nothing captured`);
        setOutputs({
          digest: fresh,
          image: `${registry.image}@${fresh}`,
          tags: '',
          size: 0,
          uploaded: 0,
          layers: 0,
          skipped: true,
        });
        return;
      }
    }
    destination = registry ? registryDestination(registry, inputs) : await layoutDestination(inputs);
    await snapshot(inputs, destination, log, registry);
    await returnToCaller(
      [inputs.dryRun ? inputs.output : '', inputs.metadataFile, path.dirname(LayerCache.defaultPath())],
      log,
    );
  } catch (err) {
    await destination?.abort().catch(() => {});
    if (err instanceof NeedsRootError || (err instanceof PermissionError && !isRoot())) {
      const code = await rerunUnderSudo(log);
      if (code !== null) {
        process.exitCode = code;
        return;
      }
    }
    reportFailure(err, log.debug);
  }
}

async function openRegistry(inputs: Inputs, log: Logger): Promise<RegistryDestination> {
  return RegistryDestination.open({
    targets: inputs.targets,
    credentials: credentialInputs(inputs),
    insecureRegistry: inputs.insecureRegistry,
    log,
  });
}

function registryDestination(registry: RegistryDestination, inputs: Inputs): Destination {
  return {
    addBase: (base) => registry.addBase(base, inputs.concurrency),
    reuse: (fp) => registry.reuse(fp),
    exists: (digest) => registry.exists(digest),
    wrote: (fp, layer) => registry.wrote(fp, layer),
    sink: (label) => registry.sink(label),
    finish: (image) => registry.finish(image),
    abort: () => registry.abort(),
    ownPaths: [registry.cacheFile],
    pushes: true,
  };
}

async function layoutDestination(inputs: Inputs): Promise<Destination> {
  const layout = await LayoutWriter.create(inputs.output);
  return {
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
    ownPaths: layout.ownPaths,
    pushes: false,
  };
}

async function snapshot(
  inputs: Inputs,
  destination: Destination,
  baseLog: Logger,
  registry?: RegistryDestination,
): Promise<void> {
  const terminal = !inActions() && process.stderr.isTTY ? process.stderr : null;
  const progress = new Progress(baseLog, terminal, !inputs.quiet);
  const log = progress.wrap(baseLog);
  const phases: SnapshotReport['phases'] = [];
  /** One log group per phase, timed for the summary. */
  const phase = async <T>(name: string, title: string, fn: () => Promise<T>): Promise<T> => {
    const started = Date.now();
    try {
      return await (inputs.quiet ? fn() : core.group(title, fn));
    } finally {
      progress.stop();
      phases.push({ name, ms: Date.now() - started });
    }
  };

  const base = await phase('base image', 'Base image', () => findBase(inputs, log));
  const changes = await phase('walk and changes', 'Changes', async () => {
    progress.start('walk');
    const found = await findChanges({
      mode: inputs.changes,
      baseline: core.getState('baseline') || inputs.baseline,
      upper: inputs.upper,
      hasBase: !!base,
      scan: {
        root: inputs.root,
        exclude: inputs.exclude,
        include: inputs.include,
        ownPaths: [...destination.ownPaths, inputs.baseline, ...layerCacheDirs()].filter(Boolean),
        log,
        counters: progress.counters,
      },
      log,
    });
    if (found.unreadable.length && !isRoot()) throw new NeedsRootError(found.unreadable);
    if (found.scan) describeScan(found.scan, inputs.root, log);
    warnLeftOut(found.excluded, log);
    log.info(`changes: ${found.method}: ${found.reason}`);
    if (found.method !== 'full')
      log.info(`${found.changed} entries new or changed, ${found.deleted} deleted`);
    await scrubGitConfigs(found.entries, inputs.root, log, (secret) => {
      if (inActions()) core.setSecret(secret);
    });
    return found;
  });
  const env = inputs.persistEnv ? environment(inputs, base, log) : null;

  if (base) await phase('base layers', 'Base layers', () => destination.addBase(base));
  const plans = partition(changes.entries, inputs.layerSize);
  const capturedBytes = changes.entries.contentBytes();
  const rows: LayerRow[] = [];
  const layers = await phase('layers', registry ? 'Layers (compress and upload)' : 'Layers', () => {
    progress.start('layers', capturedBytes);
    return writeLayers(inputs, changes.entries, plans, destination, log, progress, rows);
  });
  const created = createdTime(changes.entries, base);
  const imageEnv = env ? { env: env.env } : {};
  if (await isDirectory(path.join(inputs.root, 'etc'))) {
    const target = inputs.targets[0];
    const marker = markerFor(
      buildImage({ base, layers, created, ...imageEnv }),
      target ? `${target.registry}/${target.repository}` : '',
      target?.tag ?? 'latest',
      created,
    );
    const { compression, compressionLevel: level } = inputs;
    const markerLayer = await writeMarkerLayer(
      marker,
      { compression, level, log },
      destination.sink('the marker layer'),
      (d) => destination.exists(d),
    );
    log.info(
      `marker layer /${MARKER_PATH}: ${formatBytes(markerLayer.descriptor.size)} ${markerLayer.descriptor.digest}`,
    );
    layers.push(markerLayer);
    rows.push({
      label: `/${MARKER_PATH}`,
      entries: 1,
      bytes: 0,
      compressed: markerLayer.descriptor.size,
      how: registry ? 'uploaded' : 'written',
    });
  }

  const image = buildImage({ base, layers, created, ...imageEnv, ...sourceAnnotations() });
  const tags = inputs.targets.length ? inputs.targets.map((t) => t.tag!) : ['latest'];
  await phase(registry ? 'push' : 'layout', registry ? 'Push' : 'Layout', () =>
    destination.finish(image, tags),
  );

  const digest = image.manifest.descriptor.digest;
  const manifest = JSON.parse(image.manifest.bytes.toString()) as Manifest;
  const size = manifest.layers.reduce((n, l) => n + l.size, 0) + image.config.descriptor.size;
  const durationMs = phases.reduce((n, p) => n + p.ms, 0);
  const uploaded = registry ? registry.repo.uploaded : 0;
  if (inputs.metadataFile) {
    await writeMetadata(inputs.metadataFile, {
      schemaVersion: 1,
      operation: 'snapshot',
      images: registry ? tags.map((t) => `${registry.image}:${t}`) : [],
      output: registry ? null : inputs.output,
      ...describeManifest(image.manifest.bytes, digest),
      uploaded,
      base: base ? { name: base.name, digest: base.digest || null } : null,
      changes: changes.method,
      durationMs,
    });
  }
  log.info(
    `${registry ? registry.image : inputs.output} ${digest} (${tags.join(', ')}), ${manifest.layers.length} layers (${layers.length} new), ${formatBytes(size)}, in ${(durationMs / 1000).toFixed(1)} s`,
  );
  const report: SnapshotReport = {
    destination: registry ? registry.image : inputs.output,
    pushed: !!registry,
    digest,
    tags,
    base: base ? { name: base.name, digest: base.digest, layers: base.layers.length } : null,
    changes: {
      method: changes.method,
      reason: changes.reason,
      changed: changes.changed,
      deleted: changes.deleted,
    },
    layers: rows,
    size,
    uploaded: registry ? uploaded : rows.reduce((n, r) => n + r.compressed, 0),
    captured: { entries: changes.entries.length, bytes: capturedBytes },
    ...whereTheBytesAre(changes.entries),
    excluded: describeExclusions(changes.excluded, changes.scan?.sockets ?? []),
    env: env ? { kept: env.kept, masked: env.masked } : null,
    phases,
  };
  await publishReport(report, inputs.quiet);
  setOutputs({
    digest,
    ...(registry ? { image: `${registry.image}@${digest}` } : { output: inputs.output }),
    tags: tags.join(','),
    size,
    uploaded,
    layers: manifest.layers.length,
    changes: changes.method,
    skipped: false,
  });
}

/** The job summary in Actions (when the runner gives a summary file), else the plain-text report. */
async function publishReport(report: SnapshotReport, quiet: boolean): Promise<void> {
  if (process.env.GITHUB_STEP_SUMMARY) await core.summary.addRaw(markdownReport(report), true).write();
  if (!inActions() && !quiet) process.stdout.write('\n' + textReport(report) + '\n\n');
}

/** The image's `Env`: the base's, with this job's PATH and the variables its steps set. */
function environment(inputs: Inputs, base: BaseImage | undefined, log: Logger): PersistedEnv {
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

/**
 * `promote`: the image at `from` copied to every `image` tag, digest unchanged, nothing recaptured.
 * `pull`: the image at `from` written to the OCI layout at `output`, every blob verified.
 */
async function transfer(inputs: Inputs, log: Logger): Promise<void> {
  const started = Date.now();
  const target = inputs.targets[0];
  const { source, reference, name } = await openSource(inputs, log);
  let outputs: {
    digest: string;
    uploaded: number;
    images: string[];
    output: string | null;
    manifest: Buffer;
  };
  if (inputs.mode === 'promote') {
    if (!target) throw new InputError('promote needs image (or --to): where to copy the image');
    const dest = await connect(target, {
      credentials: credentialInputs(inputs),
      insecureRegistry: inputs.insecureRegistry,
      access: 'push',
      log,
    });
    const tags = inputs.targets.map((t) => t.tag!);
    const copied = await core.group('Promote', () =>
      copyImage(source, reference, dest, tags, { concurrency: inputs.concurrency, log }),
    );
    if (inputs.from?.digest && copied.digest !== inputs.from.digest)
      throw new RegistryError(`promote: ${name} resolved to ${copied.digest}`);
    const images = tags.map((t) => `${target.registry}/${target.repository}:${t}`);
    for (const image of images) log.info(`promoted ${name} to ${image} (${copied.digest})`);
    outputs = {
      digest: copied.digest,
      uploaded: dest.uploaded,
      images,
      output: null,
      manifest: copied.manifest,
    };
  } else {
    const layout = await LayoutWriter.create(inputs.output);
    try {
      const pulled = await core.group('Pull', () =>
        pullToLayout(source, reference, layout, inputs.from?.tag ?? 'latest', {
          concurrency: inputs.concurrency,
        }),
      );
      log.info(`pulled ${name} (${pulled.digest}) into ${inputs.output}`);
      outputs = {
        digest: pulled.digest,
        uploaded: 0,
        images: [],
        output: inputs.output,
        manifest: pulled.manifest,
      };
    } catch (err) {
      await layout.abort();
      throw err;
    }
  }
  const described = describeManifest(outputs.manifest, outputs.digest);
  if (inputs.metadataFile) {
    await writeMetadata(inputs.metadataFile, {
      schemaVersion: 1,
      operation: inputs.mode,
      images: outputs.images,
      output: outputs.output,
      ...described,
      uploaded: outputs.uploaded,
      base: null,
      changes: null,
      durationMs: Date.now() - started,
    });
  }
  setOutputs({
    digest: outputs.digest,
    ...(target && inputs.mode === 'promote'
      ? { image: `${target.registry}/${target.repository}@${outputs.digest}` }
      : {}),
    ...(outputs.output ? { output: outputs.output } : {}),
    tags: inputs.mode === 'promote' ? inputs.targets.map((t) => t.tag).join(',') : '',
    size: described.size,
    uploaded: outputs.uploaded,
    layers: described.layers.length,
    skipped: false,
  });
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

function credentialInputs(inputs: Inputs): { token: string; username: string; password: string } {
  return { token: inputs.token, username: inputs.username, password: inputs.password };
}

/** The base image: named by the user or the platform, else found through the root's marker, else none. */
async function findBase(inputs: Inputs, log: Logger): Promise<BaseImage | undefined> {
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
  if (marker?.repository) return baseFromMarker(marker, options);
  log.info(
    `no base image: no base-image input, no SNAPSHOT_BASE_IMAGE, no /${MARKER_PATH} in ${inputs.root}`,
  );
  return undefined;
}

async function isDirectory(p: string): Promise<boolean> {
  return lstat(p).then(
    (st) => st.isDirectory(),
    () => false,
  );
}

function describeScan(scan: WalkResult, root: string, log: Logger): void {
  const bytes = scan.entries.contentBytes();
  log.info(`${scan.entries.length} entries, ${formatBytes(bytes)} in ${root}`);
  for (const line of describeExclusions(scan.excluded, scan.sockets)) log.info(`left out: ${line}`);
  if (scan.sockets.length)
    log.warn(`${scan.sockets.length} socket(s) skipped: sockets cannot be stored in an image`);
}

/** Writes (or reuses) every layer, `concurrency` at a time; zlib runs on the pool, so cores fill. */
async function writeLayers(
  inputs: Inputs,
  entries: EntryTable,
  plans: LayerPlan[],
  destination: Destination,
  log: Logger,
  progress: Progress,
  rows: LayerRow[],
): Promise<NewLayer[]> {
  const parallel = limiter(inputs.concurrency);
  const { compression, compressionLevel: level, root } = inputs;
  // After a failure no new layer starts, and the ones under way finish before the error surfaces, so
  // nothing still writes into a layout (or an upload) that is being cleaned up.
  let failed = false;
  // Largest first: the last layers to start are then the small ones, so both cores stay busy to the
  // end instead of one big layer compressing alone (the longest-processing-time rule).
  const order = plans.map((_, i) => i).sort((a, b) => plans[b].bytes - plans[a].bytes || a - b);
  const started = new Map(
    order.map((i) => [
      i,
      parallel(async () => {
        if (failed) throw CANCELLED;
        try {
          return await writeOneLayer(plans[i], i);
        } catch (err) {
          failed = true;
          throw err;
        }
      }),
    ]),
  );
  const outcomes = await Promise.allSettled(plans.map((_, i) => started.get(i)!));
  const failure = outcomes.find(
    (o): o is PromiseRejectedResult => o.status === 'rejected' && o.reason !== CANCELLED,
  );
  if (failure) throw failure.reason;
  const written = outcomes.map(
    (o) => (o as PromiseFulfilledResult<{ layer: NewLayer; row: LayerRow }>).value,
  );
  rows.push(...written.map((w) => w.row));
  return written.map((w) => w.layer);

  async function writeOneLayer(plan: LayerPlan, i: number): Promise<{ layer: NewLayer; row: LayerRow }> {
    const fp = fingerprint(entries, plan.indices, compression, level);
    const name = `layer ${i + 1}/${plans.length} ${plan.label}`;
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
    const input = { root, entries, indices: plan.indices, compression, level, log };
    for (let attempt = 1; ; attempt++) {
      try {
        const sink = destination.sink(name);
        // A monolithic upload needs the digest before its first byte: compute it in a first pass.
        const expected = sink.needsDigestFirst?.()
          ? (await writeLayer(input, DISCARD)).descriptor
          : undefined;
        const r = await writeLayer({ ...input, counters: progress.counters }, sink, expected);
        log.info(
          `${name}: ${r.entries} entries, ${formatBytes(r.uncompressedSize)} → ${formatBytes(r.descriptor.size)} ${r.descriptor.digest}`,
        );
        const descriptor = { ...r.descriptor, annotations: { [FINGERPRINT_ANNOTATION]: fp } };
        const layer = { descriptor, diffId: r.diffId, comment: plan.label };
        destination.wrote(fp, layer);
        return { layer, row: row(destination.pushes ? 'uploaded' : 'written', descriptor.size) };
      } catch (err) {
        if (!(err instanceof RestartBlobError) || attempt >= MAX_LAYER_RESTARTS) throw err;
        log.warn(`${name}: ${err.message}; starting this layer over`);
        await waitBeforeRetry(attempt, name);
      }
    }
  }
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

/**
 * SOURCE_DATE_EPOCH when set, else the newest mtime captured (or the base's time when nothing changed):
 * never the clock, so captures repeat.
 */
function createdTime(entries: EntryTable, base?: BaseImage): string {
  const epoch = process.env.SOURCE_DATE_EPOCH;
  if (epoch && /^\d+$/.test(epoch)) return rfc3339(Number(epoch));
  const baseCreated = base?.config.created;
  let { sec, nsec } = (baseCreated && parseTime(baseCreated)) || { sec: 0, nsec: 0 };
  let newer = false;
  for (let i = 0; i < entries.length; i++) {
    const [s, ns] = [entries.mtimeSec(i), entries.mtimeNsec(i)];
    if (s > sec || (s === sec && ns > nsec)) {
      [sec, nsec] = [s, ns];
      newer = true;
    }
  }
  // Nothing newer than the base: its own time, verbatim, so an unchanged snapshot repeats exactly.
  return !newer && baseCreated ? baseCreated : rfc3339(sec, nsec);
}

/** RFC 3339 → seconds and nanoseconds since the epoch (Date keeps only milliseconds). */
function parseTime(s: string): { sec: number; nsec: number } | null {
  const ms = Date.parse(s);
  if (Number.isNaN(ms)) return null;
  const frac = /\.(\d+)/.exec(s)?.[1] ?? '';
  return { sec: Math.floor(ms / 1000), nsec: Number(frac.slice(0, 9).padEnd(9, '0')) };
}

function sourceAnnotations(): { source?: string; revision?: string } {
  const { GITHUB_SERVER_URL: server, GITHUB_REPOSITORY: repo, GITHUB_SHA: sha } = process.env;
  return {
    ...(server && repo ? { source: `${server}/${repo}` } : {}),
    ...(sha ? { revision: sha } : {}),
  };
}
