// SIGTERM (the runner cancelling a job) and SIGINT (Ctrl-C) in the middle of a dry run: the staging
// directory of the layout is removed, an earlier layout at `output` stays as it was, and the run ends
// non-zero with one line.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { runAction, startAction } from '../helpers/action.js';
import { cleanupAll, tmpDir } from '../helpers/tools.js';
import { diffTrees, snapshotTree } from '../helpers/tree.js';

let tree: string;

beforeAll(async () => {
  // ~48 MiB of text at gzip level 9: several seconds of work to interrupt.
  tree = path.join(await tmpDir('interrupt'), 'root');
  for (let d = 0; d < 4; d++) {
    await mkdir(path.join(tree, `d${d}`), { recursive: true });
    for (let f = 0; f < 3; f++)
      await writeFile(path.join(tree, `d${d}`, `f${f}`), randomBytes(3 * 1024 * 1024).toString('base64'));
  }
});
afterAll(cleanupAll);

/** Starts a dry run into `output`, waits until a blob is being written in its staging directory. */
async function interruptMidway(output: string, signal: NodeJS.Signals) {
  const parent = path.dirname(output);
  const running = await startAction({
    root: tree,
    'dry-run': 'true',
    output,
    'compression-level': '9',
    'layer-size': '16MiB',
  });
  const started = Date.now();
  for (;;) {
    expect(running.child.exitCode, 'the dry run ended before it was interrupted').toBeNull();
    expect(Date.now() - started).toBeLessThan(60_000);
    const staging = (await readdir(parent)).find((n) => n.includes('.partial-'));
    const blobs = staging ? path.join(parent, staging, 'blobs') : '';
    const writing =
      blobs && existsSync(blobs) ? (await readdir(blobs)).filter((n) => n.startsWith('.tmp-')) : [];
    const sizes = await Promise.all(
      writing.map((n) =>
        stat(path.join(blobs, n)).then(
          (s) => s.size,
          () => 0,
        ),
      ),
    );
    if (sizes.some((s) => s > 0)) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  running.child.kill(signal);
  return running.result;
}

describe('interrupted dry run', () => {
  it.each([
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const)('%s removes the staging directory and exits %i with one line', async (signal, code) => {
    const parent = await tmpDir('interrupt-out');
    const output = path.join(parent, 'layout');
    const r = await interruptMidway(output, signal);
    expect(r.code).toBe(code);
    expect(r.errors).toEqual([
      `::error::interrupted by ${signal} before the snapshot finished; nothing partial was left, run it again`,
    ]);
    expect(r.stdout + r.stderr).not.toMatch(/(^|\n|%0A)\s*at \S|Error: /);
    expect(await readdir(parent)).toEqual([]);
  });

  it('keeps an earlier layout at output as it was', async () => {
    const parent = await tmpDir('interrupt-out');
    const output = path.join(parent, 'layout');
    const small = await tmpDir('interrupt-small');
    await writeFile(path.join(small, 'f'), 'earlier\n');
    const earlier = await runAction({ root: small, 'dry-run': 'true', output });
    expect(earlier.errors).toEqual([]);
    const before = await snapshotTree(parent);
    const r = await interruptMidway(output, 'SIGTERM');
    expect(r.code).toBe(143);
    expect(r.errors).toHaveLength(1);
    const after = await snapshotTree(parent);
    before.delete('.');
    after.delete('.');
    expect(diffTrees(before, after)).toEqual([]);
    expect(await readdir(parent)).toEqual(['layout']);
  });
});
