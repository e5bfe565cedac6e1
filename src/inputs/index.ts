import path from 'node:path';
import { CHANGE_MODES, type ChangeMode } from '../diff/changes.js';
import { COMPRESSIONS, LEVELS, zstdAvailable, type Compression } from '../layer/compress.js';
import type { Reference, Target } from '../registry/reference.js';
import { readRawInputs, type RawInputs } from './cli.js';
import { InputError } from '../failure.js';
import { parseBoolean, parseDuration, parseInteger, parseList, parseOneOf, parseSize } from './parse.js';
import { CONCURRENCY, MAX_LAYERS, MODES, type Mode } from './spec.js';
import {
  baselineInput,
  checkedReference,
  checkParents,
  globList,
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

/** `pull`: the image in a registry written to the OCI layout at `output`. */
export interface PullInputs extends CommonInputs {
  mode: 'pull';
  source: { kind: 'registry'; reference: Reference };
}

export type Inputs = SnapshotInputs | PromoteInputs | PullInputs;

/** Reads flags (outside Actions) over `INPUT_*` variables over defaults, then validates everything. */
export function getInputs(argv: string[], env: NodeJS.ProcessEnv = process.env): Inputs {
  const raw = readRawInputs(argv, env);
  const mode = parseOneOf(raw.mode, 'mode', MODES);
  const common = commonInputs(raw, env, mode);
  const targets = targetsInput(parseList(raw.image));
  if (mode === 'snapshot') {
    if (targets.length === 0 && !common.dryRun)
      throw new InputError('image is required (or set dry-run to write a layout instead)');
    const sbom = parseBoolean(raw.sbom, 'sbom');
    const provenance = parseBoolean(raw.provenance, 'provenance');
    return { mode, targets, sbom, provenance, ...common };
  }
  const source = sourceInput(raw.from, mode);
  if (mode === 'pull') {
    if (source.kind === 'layout')
      throw new InputError('pull reads from a registry; from: oci:… is already a layout');
    return { mode, source, ...common };
  }
  const [first, ...rest] = targets;
  if (!first) throw new InputError('promote needs image (or --to): where to copy the image');
  return { mode, targets: [first, ...rest], source, ...common };
}

/**
 * The pre step's inputs: those of a snapshot, or null for promote and pull, which record no
 * baseline. The image and the source are not needed yet: the main step checks them.
 */
export function getPreInputs(argv: string[], env: NodeJS.ProcessEnv = process.env): CommonInputs | null {
  const raw = readRawInputs(argv, env);
  const mode = parseOneOf(raw.mode, 'mode', MODES);
  return mode === 'snapshot' ? commonInputs(raw, env, mode) : null;
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
  const output = path.resolve(raw.output.trim() || 'snapshot-layout');
  const writesLayout = mode === 'pull' || (mode === 'snapshot' && dryRun);
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
    persistEnv: parseBoolean(raw['persist-env'], 'persist-env'),
    envMask: globList(raw['env-mask'], 'env-mask'),
    quiet: parseBoolean(raw.quiet, 'quiet'),
  };
}
