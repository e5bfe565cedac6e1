import { rmSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { onInterrupt } from '../interrupt.js';

/**
 * Writes `file` through a temporary file beside it, renamed into place once whole: a reader finds the
 * earlier file or the new one, never part of one. A failure, or an interrupt while writing, removes the
 * temporary file and leaves the earlier one. The directory is made for its owner alone when missing
 * (what is written here lists the machine's files or software).
 */
export async function writeAtomically(
  file: string,
  what: string,
  write: (tmp: string) => Promise<void>,
): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  const forget = onInterrupt(() => {
    rmSync(tmp, { force: true });
    return `no new ${what} was written at ${file}`;
  });
  try {
    await write(tmp);
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  } finally {
    forget();
  }
}
