import path from 'node:path';
import { CHANGE_MODES, type ChangeMode } from '../diff/changes.js';
import { COMPRESSIONS, LEVELS, zstdAvailable, type Compression } from '../layer/compress.js';
import type { Reference, Target } from '../registry/reference.js';
import { readRawInputs, type RawInputs } from './cli.js';
import { InputError } from '../failure.js';
import { parseBoolean, parseDuration, parseInteger, parseList, parseOneOf, parseSize } from './parse.js';
import { CONCURRENCY, MAX_LAYERS, MODES, OUTPUT_DEFAULT, type Mode } from './spec.js';
import {
  baselineInput,
  checkedReference,
  checkParents,
  globList,
  keyInput,
  layoutInput,
  metadataFileInput,
  pathPatterns,
  referenceInput,
  targetsInput,
} from './validate.js';

export { helpText, secretValues, wantsHelp } from './cli.js';
export { InputError } from '../failure.js';
export { parseDuration, parseSize } from './parse.js';
export { INPUT_SPECS, type InputSpec, type Mode } from './spec.js';

/** What every mode reads; each mode's own inputs are in its type below. */
export interface CommonInputs {
  root: string;
  dryRun: boolean;
  output: string;
  exclude: string[];
  include: string[];
  compression: Compression;
  compressionLevel: number;
  metadataFile: string;
  baseImage: string;
  changes: ChangeMode;
  /** Empty when neither given nor derivable (no RUNNER_TEMP). */
  baseline: string;
  /** The baseline path was given by the user, not derived from RUNNER_TEMP. */
  baselineGiven: boolean;
  /** The overlay upper dir of `root` as this process sees it; empty when not given. */
  upper: string;
  layerSize: number;
  maxLayers: number;
  token: string;
  username: string;
  password: string;
  insecureRegistry: boolean;
  concurrency: number;
  /** Milliseconds, 0 for none. */
  maxAge: number;
  /** What the image is built from, stored as its `dev.depot.snapshot.key` annotation; '' for none. */
  key: string;
  persistEnv: boolean;
  envMask: string[];
  quiet: boolean;
}

/** `snapshot`: the tree at `root` pushed to `targets` (none for a dry run, which writes `output`). */
export interface SnapshotInputs extends CommonInputs {
  mode: 'snapshot';
  targets: Target[];
  /** Attach a CycloneDX SBOM to the image. */
  sbom: boolean;
  /** Attach SLSA provenance to the image. */
  provenance: boolean;
}

/** Where promote and pull read the image: a registry, or an OCI layout on disk (`from: oci:DIR[:TAG]`). */
export type SourceInput =
  { kind: 'registry'; reference: Reference } | { kind: 'layout'; dir: string; tag: string };

/** `promote`: the image at `source` copied to every target, digest unchanged. */
export interface PromoteInputs extends CommonInputs {
  mode: 'promote';
  targets: [Target, ...Target[]];
  source: SourceInput;
}

/**
 * `pull`: the image in a registry written to the OCI layout at `output`, or loaded into Docker or
 * podman (`load`), or both.
 */
export interface PullInputs extends CommonInputs {
  mode: 'pull';
  source: { kind: 'registry'; reference: Reference };
  load: boolean;
  /** Whether a layout is written at `output`: always without `load`, with it when `output` is set. */
  writeLayout: boolean;
}

/** `lookup`: what the first `image` tag holds, and whether it has this `key` and is young enough. */
export interface LookupInputs extends CommonInputs {
  mode: 'lookup';
  target: Target;
}

export type Inputs = SnapshotInputs | PromoteInputs | PullInputs | LookupInputs;

/** Reads flags (outside Actions) over `INPUT_*` variables over defaults, then validates everything. */
export function getInputs(argv: string[], env: NodeJS.ProcessEnv = process.env): Inputs {
  const raw = readRawInputs(argv, env);
  const mode = parseOneOf(raw.mode, 'mode', MODES);
  const load = parseBoolean(raw.load, 'load');
  if (load && mode !== 'pull')
    throw new InputError(
      `load is for mode pull (it loads the pulled image into Docker or podman), not ${mode}`,
    );
  const common = commonInputs(raw, env, mode);
  if (common.key && mode !== 'snapshot' && mode !== 'lookup')
    throw new InputError(`key is for modes snapshot and lookup; ${mode} copies an image as it is`);
  const targets = targetsInput(parseList(raw.image));
  if (mode === 'snapshot') {
    if (targets.length === 0 && !common.dryRun)
      throw new InputError('image is required (or set dry-run to write a layout instead)');
    const sbom = parseBoolean(raw.sbom, 'sbom');
    const provenance = parseBoolean(raw.provenance, 'provenance');
    return { mode, targets, sbom, provenance, ...common };
  }
  if (mode === 'lookup') {
    if (!targets[0]) throw new InputError('lookup needs image: the tag to look at');
    if (common.metadataFile)
      throw new InputError(
        'lookup writes nothing, no metadata-file either: read its outputs hit, digest, created and key',
      );
    return { mode, target: targets[0], ...common };
  }
  const source = sourceInput(raw.from, mode);
  if (mode === 'pull') {
    if (source.kind === 'layout')
      throw new InputError('pull reads from a registry; from: oci:… is already a layout');
    return { mode, source, load, writeLayout: pullWritesLayout(raw), ...common };
  }
  const [first, ...rest] = targets;
  if (!first) throw new InputError('promote needs image (or --to): where to copy the image');
  return { mode, targets: [first, ...rest], source, ...common };
}

/**
 * The pre step's inputs: those of a snapshot, or null for promote, pull and lookup, which record no
 * baseline. The image and the source are not needed yet: the main step checks them.
 */
export function getPreInputs(argv: string[], env: NodeJS.ProcessEnv = process.env): CommonInputs | null {
  const raw = readRawInputs(argv, env);
  const mode = parseOneOf(raw.mode, 'mode', MODES);
  return mode === 'snapshot' ? commonInputs(raw, env, mode) : null;
}

/**
 * A pull writes its layout unless it loads into a runtime, and then only when `output` is set: to
 * anything but its default, since the runner passes the default for an input left unset.
 */
function pullWritesLayout(raw: RawInputs): boolean {
  const output = raw.output.trim();
  return !parseBoolean(raw.load, 'load') || (output !== '' && output !== OUTPUT_DEFAULT);
}

function sourceInput(from: string, mode: Mode): SourceInput {
  const layout = layoutInput(from.trim());
  if (layout) return { kind: 'layout', ...layout };
  if (!from.trim()) throw new InputError(`${mode} needs from: the image to ${mode}`);
  return { kind: 'registry', reference: referenceInput(from, 'from') };
}

function commonInputs(raw: RawInputs, env: NodeJS.ProcessEnv, mode: Mode): CommonInputs {
  const compression = parseOneOf(raw.compression, 'compression', COMPRESSIONS);
  if (compression === 'zstd' && !zstdAvailable()) {
    throw new InputError(
      `compression zstd needs Node.js 22.15 or newer (this is ${process.version}); use gzip`,
    );
  }
  const levels = LEVELS[compression];
  const compressionLevel = raw['compression-level']
    ? parseInteger(raw['compression-level'], 'compression-level')
    : levels.default;
  if (compression !== 'none' && (compressionLevel < levels.min || compressionLevel > levels.max)) {
    throw new InputError(
      `compression-level ${compressionLevel} is out of range for ${compression} (${levels.min}-${levels.max})`,
    );
  }
  const dryRun = parseBoolean(raw['dry-run'], 'dry-run');
  const output = path.resolve(raw.output.trim() || OUTPUT_DEFAULT);
  const writesLayout = (mode === 'pull' && pullWritesLayout(raw)) || (mode === 'snapshot' && dryRun);
  if (writesLayout) checkParents(output, 'output');
  return {
    root: path.resolve(raw.root.trim() || '/'),
    dryRun,
    output,
    exclude: pathPatterns(raw.exclude, 'exclude'),
    include: pathPatterns(raw.include, 'include'),
    compression,
    compressionLevel,
    metadataFile: metadataFileInput(raw['metadata-file'].trim(), writesLayout ? output : ''),
    baseImage: checkedReference(
      raw['base-image'].trim() || env.SNAPSHOT_BASE_IMAGE?.trim() || '',
      'base-image',
    ),
    changes: parseOneOf(raw.changes, 'changes', CHANGE_MODES),
    baseline: baselineInput(
      raw.baseline.trim()
        ? path.resolve(raw.baseline.trim())
        : env.RUNNER_TEMP
          ? path.join(env.RUNNER_TEMP, 'depot-snapshot-baseline.gz')
          : '',
    ),
    baselineGiven: raw.baseline.trim() !== '',
    upper: raw.upper.trim() ? path.resolve(raw.upper.trim()) : '',
    layerSize: parseSize(raw['layer-size'], 'layer-size'),
    maxLayers: parseInteger(raw['max-layers'], 'max-layers', MAX_LAYERS),
    token: raw.token.trim(),
    username: raw.username.trim(),
    password: raw.password,
    insecureRegistry: parseBoolean(raw['insecure-registry'], 'insecure-registry'),
    concurrency: parseInteger(raw.concurrency, 'concurrency', CONCURRENCY),
    maxAge: raw['max-age'].trim() ? parseDuration(raw['max-age'], 'max-age') : 0,
    key: keyInput(raw.key),
    persistEnv: parseBoolean(raw['persist-env'], 'persist-env'),
    envMask: globList(raw['env-mask'], 'env-mask'),
    quiet: parseBoolean(raw.quiet, 'quiet'),
  };
}
