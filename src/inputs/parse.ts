import { InputError } from '../failure.js';

// Generic parsers of one input's value as given (a string); `name` is the input, for the error.

/** One item a line, trimmed; blank lines and `#` comments dropped. */
export function parseList(value: string): string[] {
  return value
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
}

/** The YAML 1.2 core schema's booleans, as the Actions toolkit reads them; blank is false. */
export function parseBoolean(value: string, name: string): boolean {
  const v = value.trim();
  if (['true', 'True', 'TRUE'].includes(v)) return true;
  if (['false', 'False', 'FALSE', ''].includes(v)) return false;
  throw new InputError(`${name} must be true or false, got "${v}"`);
}

/** A whole number, within `range` when given. */
export function parseInteger(value: string, name: string, range?: { min: number; max: number }): number {
  const v = value.trim();
  if (!/^-?\d+$/.test(v)) throw new InputError(`${name} must be a whole number, got "${v}"`);
  const n = Number(v);
  if (range && (n < range.min || n > range.max))
    throw new InputError(`${name} must be between ${range.min} and ${range.max}, got ${n}`);
  return n;
}

/** One of `allowed`, in any case. */
export function parseOneOf<T extends string>(value: string, name: string, allowed: readonly T[]): T {
  const v = value.trim().toLowerCase() as T;
  if (!allowed.includes(v))
    throw new InputError(`${name} must be one of ${allowed.join(', ')}, got "${value}"`);
  return v;
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

const SIZE_UNITS: Record<string, number> = {
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
  const unit = m ? SIZE_UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined)
    throw new InputError(`${name} must be a size like 512MiB or 1GB, got "${value}"`);
  const bytes = Math.floor(Number(m[1]) * unit);
  if (bytes < 1024 ** 2) throw new InputError(`${name} must be at least 1MiB, got "${value}"`);
  if (!Number.isSafeInteger(bytes)) throw new InputError(`${name} is too large, got "${value}"`);
  return bytes;
}
