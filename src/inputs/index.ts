import path from 'node:path';
import { CHANGE_MODES, type ChangeMode } from '../diff/changes.js';
import { COMPRESSIONS, LEVELS, zstdAvailable, type Compression } from '../layer/compress.js';
import type { Reference } from '../registry/reference.js';
import { readRawInputs } from './cli.js';
import { InputError } from '../failure.js';
import { parseBoolean, parseDuration, parseInteger, parseList, parseOneOf, parseSize } from './parse.js';
import { CONCURRENCY, MODES, type Mode } from './spec.js';
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

export interface Inputs {
  targets: Reference[];
  root: string;
  dryRun: boolean;
  output: string;
  exclude: string[];
  include: string[];
  compression: Compression;
  compressionLevel: number;
  mode: Mode;
  from?: Reference;
  /** `from: oci:DIR[:TAG]`: an OCI layout on disk (a dry run's output) to promote. */
  fromLayout?: { dir: string; tag: string };
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

/** Reads flags (outside Actions) over `INPUT_*` variables over defaults, then validates everything. */
export function getInputs(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
  opts: { pre?: boolean } = {},
): Inputs {
  const raw = readRawInputs(argv, env);
  const mode = parseOneOf(raw.mode, 'mode', MODES);
  const fromLayout = layoutInput(raw.from.trim());
  const from = raw.from.trim() && !fromLayout ? referenceInput(raw.from, 'from') : undefined;
  if (mode !== 'snapshot' && !from && !fromLayout)
    throw new InputError(`${mode} needs from: the image to ${mode}`);
  if (mode === 'pull' && fromLayout)
    throw new InputError('pull reads from a registry; from: oci:… is already a layout');
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
  const images = parseList(raw.image);
  if (images.length === 0 && !dryRun && !opts.pre && mode !== 'pull')
    throw new InputError('image is required (or set dry-run to write a layout instead)');
  const targets = targetsInput(images);
  const output = path.resolve(raw.output.trim() || 'snapshot-layout');
  const writesLayout = mode === 'pull' || (mode === 'snapshot' && dryRun);
  if (writesLayout) checkParents(output, 'output');
  return {
    targets,
    root: path.resolve(raw.root.trim() || '/'),
    dryRun,
    output,
    exclude: pathPatterns(raw.exclude, 'exclude'),
    include: pathPatterns(raw.include, 'include'),
    compression,
    compressionLevel,
    mode,
    ...(from ? { from } : {}),
    ...(fromLayout ? { fromLayout } : {}),
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
