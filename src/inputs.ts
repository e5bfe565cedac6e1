import { parseArgs } from 'node:util';
import path from 'node:path';
import { accessSync, constants, statSync, type Stats } from 'node:fs';
import picomatch from 'picomatch';
import { LEVELS, zstdAvailable, type Compression } from './layer/compress.js';
import { parseReference, parseTargets, type Reference } from './registry/reference.js';
import { relativePattern } from './walk/filter.js';
import { UserError } from './failure.js';

/** Bad input: reported as one line, exit 1, before anything is written. */
export class InputError extends UserError {}

interface InputSpec {
  name: string;
  description: string;
  default: string;
  boolean?: boolean;
  /** Newline-separated list; as a CLI flag it may also be repeated. */
  list?: boolean;
}

/** Every input, for the action (`INPUT_<NAME>`) and the CLI (`--<name>`). action.yml says the same. */
export const INPUT_SPECS: InputSpec[] = [
  {
    name: 'image',
    description: 'Image reference(s) to push to, one per line, all in one repository; tag defaults to latest',
    default: '',
    list: true,
  },
  { name: 'root', description: 'Root of the filesystem to capture', default: '/' },
  {
    name: 'dry-run',
    description: 'Write an OCI image layout to `output` instead of pushing',
    default: 'false',
    boolean: true,
  },
  {
    name: 'output',
    description: 'Directory of the OCI image layout written by a dry run',
    default: 'snapshot-layout',
  },
  {
    name: 'exclude',
    description: 'Paths or globs to leave out, one per line, as if root were /',
    default: '',
    list: true,
  },
  {
    name: 'include',
    description: 'Paths or globs to keep even where an exclusion (default or yours) would leave them out',
    default: '',
    list: true,
  },
  { name: 'compression', description: 'Layer compression: gzip, zstd or none', default: 'gzip' },
  {
    name: 'compression-level',
    description: 'Compression level (gzip 1-9, default 1; zstd 1-19, default 3)',
    default: '',
  },
  {
    name: 'layer-size',
    description: 'Target uncompressed size of one layer, e.g. 512MiB; the tree is split by subtree',
    default: '512MiB',
  },
  {
    name: 'base-image',
    description:
      'The image the sandbox started from (optionally @digest): its layers are reused and only changes captured. Default: SNAPSHOT_BASE_IMAGE',
    default: '',
  },
  {
    name: 'changes',
    description:
      'How changes are found: auto (overlay upper dir, else the baseline when one was recorded, else full), overlay, baseline, or full',
    default: 'auto',
  },
  {
    name: 'baseline',
    description: 'Baseline index written by the pre step and read by the main step (default: in RUNNER_TEMP)',
    default: '',
  },
  {
    name: 'upper',
    description:
      "The overlay upper dir of root as this job sees it, when mountinfo's upperdir is not reachable (e.g. /rw/.snap/upper after a pivot_root): changes are read from it",
    default: '',
  },
  {
    name: 'metadata-file',
    description: 'Write a JSON file describing the result (schema: metadata.schema.json)',
    default: '',
  },
  {
    name: 'mode',
    description:
      'snapshot (capture root), promote (copy `from` to `image` without recapturing) or pull (fetch `from` into `output`)',
    default: 'snapshot',
  },
  {
    name: 'from',
    description:
      'The source image (tag or @digest) of promote and pull; for promote also oci:DIR[:TAG], an OCI layout',
    default: '',
  },
  {
    name: 'token',
    description:
      'Registry token, sent as Basic x-token:<token> (Depot registry); DEPOT_SNAPSHOT_TOKEN or DEPOT_TOKEN when empty',
    default: '',
  },
  { name: 'username', description: 'Registry username (with password)', default: '' },
  { name: 'password', description: 'Registry password (with username)', default: '' },
  {
    name: 'insecure-registry',
    description: 'Talk plain HTTP to the registry (automatic for localhost and 127.0.0.0/8)',
    default: 'false',
    boolean: true,
  },
  { name: 'concurrency', description: 'Layers compressed and uploaded at once (1-16)', default: '4' },
  {
    name: 'max-age',
    description:
      'Skip the snapshot when the first tag holds an image younger than this (e.g. 45m, 1h30m, 5d)',
    default: '',
  },
  {
    name: 'persist-env',
    description:
      "Keep the job's PATH and the variables its steps set in the image's Env (never runner variables or secret-looking names)",
    default: 'true',
    boolean: true,
  },
  {
    name: 'env-mask',
    description: 'Variable names or globs never to keep in the image, one per line (e.g. MY_*)',
    default: '',
    list: true,
  },
  {
    name: 'quiet',
    description: 'Log only warnings, errors and the result (no progress, no report)',
    default: 'false',
    boolean: true,
  },
];

/** Inputs whose values are secrets: masked before anything is logged. */
export const SECRET_INPUTS = ['token', 'password'];

export interface Inputs {
  targets: Reference[];
  root: string;
  dryRun: boolean;
  output: string;
  exclude: string[];
  include: string[];
  compression: Compression;
  compressionLevel: number;
  mode: 'snapshot' | 'promote' | 'pull';
  from?: Reference;
  /** `from: oci:DIR[:TAG]`: an OCI layout on disk (a dry run's output) to promote. */
  fromLayout?: { dir: string; tag: string };
  metadataFile: string;
  baseImage: string;
  changes: 'auto' | 'overlay' | 'baseline' | 'full';
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

type Raw = Record<string, string>;

/** Reads flags (outside Actions) over `INPUT_*` variables over defaults, then validates everything. */
export function getInputs(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
  opts: { pre?: boolean } = {},
): Inputs {
  const raw = readRaw(subcommandArgs(argv), env);
  const mode = oneOf(raw, 'mode', ['snapshot', 'promote', 'pull'] as const);
  const fromLayout = layoutInput(raw.from.trim());
  const from = raw.from.trim() && !fromLayout ? referenceInput(raw.from, 'from') : undefined;
  if (mode !== 'snapshot' && !from && !fromLayout)
    throw new InputError(`${mode} needs from: the image to ${mode}`);
  if (mode === 'pull' && fromLayout)
    throw new InputError('pull reads from a registry; from: oci:… is already a layout');
  const compression = oneOf(raw, 'compression', ['gzip', 'zstd', 'none'] as const);
  if (compression === 'zstd' && !zstdAvailable()) {
    throw new InputError(
      `compression zstd needs Node.js 22.15 or newer (this is ${process.version}); use gzip`,
    );
  }
  const levels = LEVELS[compression];
  const compressionLevel = raw['compression-level'] ? integer(raw, 'compression-level') : levels.default;
  if (compression !== 'none' && (compressionLevel < levels.min || compressionLevel > levels.max)) {
    throw new InputError(
      `compression-level ${compressionLevel} is out of range for ${compression} (${levels.min}-${levels.max})`,
    );
  }
  const dryRun = bool(raw, 'dry-run');
  const images = lines(raw.image);
  if (images.length === 0 && !dryRun && !opts.pre && mode !== 'pull')
    throw new InputError('image is required (or set dry-run to write a layout instead)');
  let targets: Reference[];
  try {
    targets = images.length ? parseTargets(images) : [];
  } catch (err) {
    throw new InputError((err as Error).message);
  }
  const output = path.resolve(raw.output.trim() || 'snapshot-layout');
  const writesLayout = mode === 'pull' || (mode === 'snapshot' && dryRun);
  if (writesLayout) checkParents(output, 'output');
  return {
    targets,
    root: path.resolve(raw.root.trim() || '/'),
    dryRun,
    output,
    exclude: pathPatterns(raw, 'exclude'),
    include: pathPatterns(raw, 'include'),
    compression,
    compressionLevel,
    mode,
    ...(from ? { from } : {}),
    ...(fromLayout ? { fromLayout } : {}),
    metadataFile: metadataFileInput(raw['metadata-file'].trim(), writesLayout ? output : ''),
    baseImage: checkedReference(raw['base-image'].trim() || env.SNAPSHOT_BASE_IMAGE?.trim() || ''),
    changes: oneOf(raw, 'changes', ['auto', 'overlay', 'baseline', 'full'] as const),
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
    insecureRegistry: bool(raw, 'insecure-registry'),
    concurrency: rangedInteger(raw, 'concurrency', 1, 16),
    maxAge: raw['max-age'].trim() ? parseDuration(raw['max-age'], 'max-age') : 0,
    persistEnv: bool(raw, 'persist-env'),
    envMask: globs(raw, 'env-mask'),
    quiet: bool(raw, 'quiet'),
  };
}

/** Values of the secret inputs, to mask before the first log line. */
export function secretValues(argv: string[], env: NodeJS.ProcessEnv = process.env): string[] {
  const raw = readRaw(argv, env, false);
  return SECRET_INPUTS.map((n) => raw[n]).filter(Boolean);
}

export function wantsHelp(argv: string[]): boolean {
  return argv.includes('--help') || argv.includes('-h');
}

export function helpText(): string {
  const rows = INPUT_SPECS.map((s) => {
    const flag = s.boolean ? `--[no-]${s.name}` : `--${s.name} <value>`;
    const def = s.default ? ` (default: ${s.default})` : '';
    return `  ${flag.padEnd(30)} ${s.description}${def}`;
  });
  return [
    'Usage: node dist/index.js [options]',
    '       node dist/index.js promote --from REF[@DIGEST] --to REF [--to REF ...]',
    '       node dist/index.js pull --from REF --output DIR',
    '',
    'Captures a directory tree as an OCI image. Every option can also be given as the',
    'environment variable INPUT_<NAME> (e.g. INPUT_DRY-RUN=true), as the Actions runner does.',
    '',
    ...rows,
    `  ${'--help'.padEnd(30)} Show this help`,
  ].join('\n');
}

function readRaw(argv: string[], env: NodeJS.ProcessEnv, strict = true): Raw {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = {};
  for (const s of INPUT_SPECS)
    options[s.name] = { type: s.boolean ? 'boolean' : 'string', multiple: !!s.list };
  let values: Record<string, string | boolean | Array<string | boolean> | undefined>;
  try {
    // `--no-persist-env` turns a boolean off (`--persist-env false` would read `false` as a stray word).
    ({ values } = parseArgs({ args: argv, options, strict, allowPositionals: !strict, allowNegative: true }));
  } catch (err) {
    throw new InputError(`${(err as Error).message.split('\n')[0]}; see --help`);
  }
  const raw: Raw = {};
  for (const s of INPUT_SPECS) {
    const flag = values[s.name];
    const fromEnv = env[`INPUT_${s.name.replace(/ /g, '_').toUpperCase()}`];
    if (Array.isArray(flag)) raw[s.name] = flag.join('\n');
    else if (typeof flag === 'boolean') raw[s.name] = String(flag);
    else if (typeof flag === 'string') raw[s.name] = flag;
    else raw[s.name] = fromEnv?.trim() ? fromEnv : s.default;
  }
  return raw;
}

function lines(value: string | undefined): string[] {
  return (value ?? '')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
}

function bool(raw: Raw, name: string): boolean {
  const v = raw[name].trim();
  if (['true', 'True', 'TRUE'].includes(v)) return true;
  if (['false', 'False', 'FALSE', ''].includes(v)) return false;
  throw new InputError(`${name} must be true or false, got "${v}"`);
}

function integer(raw: Raw, name: string): number {
  const v = raw[name].trim();
  if (!/^-?\d+$/.test(v)) throw new InputError(`${name} must be a whole number, got "${v}"`);
  return Number(v);
}

/**
 * `promote --from REF --to REF…` and `pull --from REF --output DIR` are the CLI's spelling of
 * `--mode promote|pull`, with `--to` for `--image`.
 */
function subcommandArgs(argv: string[]): string[] {
  const [first, ...rest] = argv;
  if (first !== 'promote' && first !== 'pull') return argv;
  return [
    '--mode',
    first,
    ...rest.map((a) => (a === '--to' ? '--image' : a.startsWith('--to=') ? `--image=${a.slice(5)}` : a)),
  ];
}

function referenceInput(ref: string, name: string): Reference {
  try {
    const r = parseReference(ref);
    if (!r.tag && !r.digest) r.tag = 'latest';
    return r;
  } catch (err) {
    throw new InputError(`${name}: ${(err as Error).message}`);
  }
}

function checkedReference(ref: string): string {
  if (!ref) return '';
  try {
    parseReference(ref);
  } catch (err) {
    throw new InputError(`base-image: ${(err as Error).message}`);
  }
  return ref;
}

function rangedInteger(raw: Raw, name: string, min: number, max: number): number {
  const n = integer(raw, name);
  if (n < min || n > max) throw new InputError(`${name} must be between ${min} and ${max}, got ${n}`);
  return n;
}

const DURATION_UNITS: Record<string, number> = {
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/** `45m`, `1h30m`, `5d`, `90s`: milliseconds. */
export function parseDuration(value: string, name: string): number {
  const v = value.trim();
  if (!/^(\d+[smhdw])+$/.test(v))
    throw new InputError(`${name} must be a duration like 45m, 1h30m or 5d, got "${value}"`);
  let ms = 0;
  for (const m of v.matchAll(/(\d+)([smhdw])/g)) ms += Number(m[1]) * DURATION_UNITS[m[2]];
  if (ms <= 0) throw new InputError(`${name} must be longer than zero, got "${value}"`);
  if (!Number.isSafeInteger(ms)) throw new InputError(`${name} is too long, got "${value}"`);
  return ms;
}

function oneOf<T extends string>(raw: Raw, name: string, allowed: readonly T[]): T {
  const v = raw[name].trim().toLowerCase() as T;
  if (!allowed.includes(v))
    throw new InputError(`${name} must be one of ${allowed.join(', ')}, got "${raw[name]}"`);
  return v;
}

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1000 ** 4,
  tib: 1024 ** 4,
};

/** `512MiB`, `1.5GB`, `1048576`: bytes, at least 1 MiB so a tree never shatters into tiny layers. */
export function parseSize(value: string, name: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value);
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined)
    throw new InputError(`${name} must be a size like 512MiB or 1GB, got "${value}"`);
  const bytes = Math.floor(Number(m[1]) * unit);
  if (bytes < 1024 ** 2) throw new InputError(`${name} must be at least 1MiB, got "${value}"`);
  if (!Number.isSafeInteger(bytes)) throw new InputError(`${name} is too large, got "${value}"`);
  return bytes;
}

/**
 * `exclude`/`include` lines, checked here so that no glob reaches the walk that would fail there or
 * silently match nothing: `/` alone (the whole root), a leading `!` (picomatch would negate it),
 * `.`/`..` components (never in a walked path), and globs picomatch cannot compile.
 */
function pathPatterns(raw: Raw, name: 'exclude' | 'include'): string[] {
  const patterns = lines(raw[name]);
  for (const p of patterns) {
    const rel = relativePattern(p).replace(/^(\.\/+)+/, '');
    if (rel === '' || rel === '.') {
      throw new InputError(
        name === 'exclude'
          ? `exclude "${p}" would leave out the whole root; name what to leave out below it (e.g. /var/cache)`
          : `include "${p}" would keep everything, credentials and /proc too; name what to keep (e.g. /root/.docker/config.json)`,
      );
    }
    if (rel.split('/').some((c) => c === '..' || c === '.'))
      throw new InputError(
        `${name} "${p}": "." and ".." never match a captured path; write the path without them`,
      );
    checkGlob(rel, name, p);
  }
  return patterns;
}

/** `env-mask` lines: variable names or globs. */
function globs(raw: Raw, name: string): string[] {
  const patterns = lines(raw[name]);
  for (const p of patterns) checkGlob(p, name, p);
  return patterns;
}

function checkGlob(glob: string, name: string, asWritten: string): void {
  if (picomatch.scan(glob).negated) {
    throw new InputError(
      `${name} "${asWritten}": a leading "!" would match everything else; ${name === 'exclude' ? 'use include to keep paths, or ' : ''}write "\\!" for a name that starts with "!"`,
    );
  }
  try {
    // `debug` makes picomatch throw instead of quietly compiling the glob to match nothing.
    picomatch.makeRe(glob, { dot: true, debug: true });
  } catch {
    throw new InputError(
      `${name} "${asWritten}" is not a valid glob (an unclosed brace or bracket, a range out of order, a trailing backslash, or too long); fix it or escape the character with a backslash`,
    );
  }
}

/** `from: oci:DIR[:TAG]`: an OCI layout that must be there to be read. */
function layoutInput(from: string): { dir: string; tag: string } | undefined {
  if (!from.startsWith('oci:')) return undefined;
  const match = /^oci:([^:]+)(?::(.+))?$/.exec(from);
  if (!match) throw new InputError(`from "${from}" must be oci:DIR or oci:DIR:TAG`);
  const dir = path.resolve(match[1]);
  if (!statOf(path.join(dir, 'index.json'), 'from')?.isFile())
    throw new InputError(
      `from ${from}: ${dir} is not an OCI image layout (no index.json); name the output directory of a dry run or a pull`,
    );
  return { dir, tag: match[2] ?? 'latest' };
}

/**
 * `metadata-file`: written at the end, so checked now: not a directory, in a directory that exists
 * (it is not made, like docker buildx's `--metadata-file`) and can be written, not inside the layout
 * that replaces `output` whole.
 */
function metadataFileInput(value: string, layoutOutput: string): string {
  if (!value) return '';
  const file = path.resolve(value);
  const name = 'metadata-file';
  const st = statOf(file, name);
  if (st?.isDirectory())
    throw new InputError(
      `${name} ${file} is a directory; name a file (e.g. ${path.join(file, 'metadata.json')})`,
    );
  if (st && !st.isFile())
    throw new InputError(`${name} ${file} exists and is not a regular file; choose another path`);
  if (layoutOutput && (file === layoutOutput || file.startsWith(layoutOutput + path.sep)))
    throw new InputError(
      `${name} ${file} is inside output ${layoutOutput}, which is replaced whole; put it elsewhere`,
    );
  const dir = path.dirname(file);
  const parent = statOf(dir, name);
  if (!parent)
    throw new InputError(
      `${name} ${file}: directory ${dir} does not exist; create it first (it is not made for you) or choose another path`,
    );
  if (!parent.isDirectory()) throw new InputError(`${name} ${file}: ${dir} is not a directory`);
  try {
    accessSync(dir, constants.W_OK);
  } catch (err) {
    throw new InputError(
      `${name} ${file}: directory ${dir} cannot be written (${(err as NodeJS.ErrnoException).code}); choose one this step can write to`,
    );
  }
  return file;
}

/** The baseline file: made by the pre step (with its directory), so only what is in the way counts. */
function baselineInput(file: string): string {
  if (!file) return '';
  const st = statOf(file, 'baseline');
  if (st && !st.isFile())
    throw new InputError(`baseline ${file} exists and is not a regular file; name a file`);
  checkParents(file, 'baseline');
  return file;
}

/** The nearest existing directory above `p` must be a directory (the rest can be made). */
function checkParents(p: string, name: string): void {
  for (let dir = path.dirname(p); ; dir = path.dirname(dir)) {
    const st = statOf(dir, name);
    if (st?.isDirectory()) return;
    if (st) throw new InputError(`${name} ${p}: ${dir} is not a directory; choose another path`);
    if (dir === path.dirname(dir)) return;
  }
}

/** lstat-free stat (a symlink to a directory is one): undefined when nothing is there. */
function statOf(p: string, name: string): Stats | undefined {
  try {
    return statSync(p);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new InputError(`${name} ${p} cannot be checked (${code}); choose another path`);
  }
}
