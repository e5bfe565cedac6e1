import { parseArgs } from 'node:util';
import { InputError } from '../failure.js';
import { INPUT_SPECS, MODES, type InputSpec } from './spec.js';

/** Every input's value as given, before any check: the flag, else a non-blank variable, else the default. */
export type RawInputs = Record<string, string>;

/** The modes that are also subcommands: `promote …` is `--mode promote …`. */
const SUBCOMMANDS: readonly string[] = MODES.filter((m) => m !== 'snapshot');

/** Reads flags (outside Actions) over `INPUT_*` variables over defaults; an unknown flag is an error. */
export function readRawInputs(argv: string[], env: NodeJS.ProcessEnv): RawInputs {
  return readRaw(subcommandArgs(argv), env, true);
}

/** Values of the secret inputs, to mask before the first log line: read leniently, as nothing is checked yet. */
export function secretValues(argv: string[], env: NodeJS.ProcessEnv = process.env): string[] {
  const raw = readRaw(argv, env, false);
  return INPUT_SPECS.filter((s) => s.secret)
    .map((s) => raw[s.name])
    .filter(Boolean);
}

export function wantsHelp(argv: string[]): boolean {
  return argv.includes('--help') || argv.includes('-h');
}

export function helpText(): string {
  const flags = INPUT_SPECS.map(flagSyntax);
  const width = Math.max(30, ...flags.map((f) => f.length + 1));
  const rows = INPUT_SPECS.map((s, i) => {
    const def = s.default ? ` (default: ${s.default})` : '';
    return `  ${flags[i].padEnd(width)} ${s.description}${def}`;
  });
  return [
    'Usage: node dist/index.js [options]',
    '       node dist/index.js promote --from REF[@DIGEST] --to REF [--to REF ...]',
    '       node dist/index.js pull --from REF [--output DIR] [--load]',
    '       node dist/index.js lookup --image REF [--key KEY] [--max-age DURATION]',
    '',
    'Captures a directory tree as an OCI image. Every option can also be given as the',
    'environment variable INPUT_<NAME> (e.g. INPUT_DRY-RUN=true), as the Actions runner does.',
    '',
    ...rows,
    `  ${'--help'.padEnd(width)} Show this help`,
  ].join('\n');
}

function flagSyntax(s: InputSpec): string {
  if (s.kind === 'boolean') return `--[no-]${s.name}`;
  return `--${s.name} ${s.values ? `<${s.values.join('|')}>` : '<value>'}`;
}

/** The variable the runner sets for an input: `INPUT_` and the name in upper case, dashes kept. */
function variableName(name: string): string {
  return `INPUT_${name.replace(/ /g, '_').toUpperCase()}`;
}

function readRaw(argv: string[], env: NodeJS.ProcessEnv, strict: boolean): RawInputs {
  const options: Record<string, { type: 'string' | 'boolean'; multiple: boolean }> = {};
  for (const s of INPUT_SPECS)
    options[s.name] = { type: s.kind === 'boolean' ? 'boolean' : 'string', multiple: s.kind === 'list' };
  let values: Record<string, string | boolean | Array<string | boolean> | undefined>;
  try {
    // `--no-persist-env` turns a boolean off (`--persist-env false` would read `false` as a stray word).
    ({ values } = parseArgs({ args: argv, options, strict, allowPositionals: !strict, allowNegative: true }));
  } catch (err) {
    throw new InputError(`${(err as Error).message.split('\n')[0]}; see --help`);
  }
  const raw: RawInputs = {};
  for (const s of INPUT_SPECS) {
    const flag = values[s.name];
    const fromEnv = env[variableName(s.name)];
    if (Array.isArray(flag)) raw[s.name] = flag.join('\n');
    else if (typeof flag === 'boolean') raw[s.name] = String(flag);
    else if (typeof flag === 'string') raw[s.name] = flag;
    else raw[s.name] = fromEnv?.trim() ? fromEnv : s.default;
  }
  return raw;
}

/**
 * `promote --from REF --to REF…`, `pull --from REF --output DIR` and `lookup --image REF` are the
 * CLI's spelling of `--mode promote|pull|lookup`, with `--to` for `--image`.
 */
function subcommandArgs(argv: string[]): string[] {
  const [first, ...rest] = argv;
  if (!SUBCOMMANDS.includes(first)) return argv;
  return [
    '--mode',
    first,
    ...rest.map((a) => (a === '--to' ? '--image' : a.startsWith('--to=') ? `--image=${a.slice(5)}` : a)),
  ];
}
