import type { EntryTable } from '../walk/entries.js';
import { rfc3339 } from './build.js';

/**
 * The image's `created`: SOURCE_DATE_EPOCH when set, else the newest mtime captured (or the base's
 * time when nothing is newer): never the clock, so captures repeat.
 */
export function createdTime(
  entries: EntryTable,
  baseCreated: string | undefined,
  epoch = process.env.SOURCE_DATE_EPOCH,
): string {
  if (epoch && /^\d+$/.test(epoch)) return rfc3339(Number(epoch));
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
