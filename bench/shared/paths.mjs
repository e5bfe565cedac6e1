// Where the bench reads and writes.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** bench/ */
export const BENCH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPO = path.resolve(BENCH, '..');
/** Trees, outputs, registries, Node 24 and the copy of dist/ (gitignored). */
export const WORK = path.join(BENCH, '.work');
export const RESULTS = path.join(BENCH, 'RESULTS.md');

export const log = (...a) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}]`, ...a);
