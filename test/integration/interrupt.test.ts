// SIGTERM (the runner cancelling a job) and SIGINT (Ctrl-C) in the middle of a dry run: the staging
// directory of the layout is removed, an earlier layout at `output` stays as it was, and the run ends
// non-zero with one line.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { runAction, startAction } from '../helpers/action.js';
import { unpack } from '../helpers/image.js';
import { cleanupAll, run, tmpDir } from '../helpers/tools.js';
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
      `::error::interrupted by ${signal} before the run finished; nothing was written at ${output}; run it again`,
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
    expect(r.errors).toEqual([
      `::error::interrupted by SIGTERM before the run finished; ${output} still holds the earlier layout; run it again`,
    ]);
    const after = await snapshotTree(parent);
    before.delete('.');
    after.delete('.');
    expect(diffTrees(before, after)).toEqual([]);
    expect(await readdir(parent)).toEqual(['layout']);
  });
});

/** The tree a layout at `output` unpacks to (umoci), without its root, to compare with a source. */
async function unpacked(output: string) {
  const tree = await snapshotTree(await unpack(output));
  tree.delete('.');
  return tree;
}

async function sourceTree(root: string, opts: Parameters<typeof snapshotTree>[1] = {}) {
  const tree = await snapshotTree(root, opts);
  tree.delete('.');
  return tree;
}

describe('interrupted while starting or swapping, and leftovers', () => {
  it('a SIGTERM as soon as the action runs JavaScript exits 143 with one line, nothing written', async () => {
    // Node itself dies silently from a signal that comes before it runs any JavaScript: no program
    // can catch that one. From the action's first line on, the handler must be in place. A preload
    // tells when Node starts running JavaScript and when the action installs its SIGTERM handler.
    const work = await tmpDir('interrupt-early');
    const marks = path.join(work, 'marks');
    const preload = path.join(work, 'preload.cjs');
    await writeFile(
      preload,
      `const fs = require('node:fs');
fs.appendFileSync(${JSON.stringify(marks)}, 'start ' + performance.now() + '\\n');
const on = process.on;
process.on = function (event, ...rest) {
  if (event === 'SIGTERM') fs.appendFileSync(${JSON.stringify(marks)}, 'handler ' + performance.now() + '\\n');
  return on.call(this, event, ...rest);
};
`,
    );
    const output = path.join(work, 'layout');
    const spawned = Date.now();
    const running = await startAction(
      { root: tree, 'dry-run': 'true', output },
      { env: { NODE_OPTIONS: `--require ${preload}` } },
    );
    let text = '';
    while (!text.includes('handler')) {
      expect(running.child.exitCode, 'the run ended before its handler was seen').toBeNull();
      await new Promise((r) => setTimeout(r, 1));
      text = existsSync(marks) ? await readFile(marks, 'utf8') : '';
    }
    const at = Object.fromEntries(
      text
        .trim()
        .split('\n')
        .map((l) => l.split(' ')),
    );
    // Before the bulk of the action is loaded (a few hundred milliseconds), not after it.
    expect(Number(at.handler) - Number(at.start)).toBeLessThan(50);
    await new Promise((r) => setTimeout(r, Math.max(0, 50 - (Date.now() - spawned))));
    running.child.kill('SIGTERM');
    const r = await running.result;
    expect(r.code).toBe(143);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatch(
      new RegExp(
        `^::error::interrupted by SIGTERM before the run finished; (nothing was written|${output} was not touched); run it again$`,
      ),
    );
    expect(await readdir(work)).toEqual(['marks', 'preload.cjs']);
  });

  it('a SIGTERM while the earlier layout is being removed leaves the new one whole, and says so', async () => {
    const parent = await tmpDir('interrupt-swap');
    const output = path.join(parent, 'layout');
    const small = await tmpDir('interrupt-small');
    await writeFile(path.join(small, 'f'), 'new\n');
    // An earlier layout with many files, so that removing it takes a while to interrupt.
    expect((await runAction({ root: small, 'dry-run': 'true', output })).errors).toEqual([]);
    const filler = path.join(output, 'filler');
    await mkdir(filler);
    for (let i = 0; i < 30_000; i += 1000)
      await run('bash', ['-c', `cd ${filler} && touch $(seq ${i} ${i + 999})`]);
    const running = await startAction({ root: small, 'dry-run': 'true', output });
    const started = Date.now();
    for (;;) {
      expect(running.child.exitCode, 'the run ended before the swap was seen').toBeNull();
      expect(Date.now() - started).toBeLessThan(60_000);
      if ((await readdir(parent)).some((n) => n.endsWith('.old'))) break;
      await new Promise((r) => setImmediate(r));
    }
    running.child.kill('SIGTERM');
    const r = await running.result;
    expect(r.code).toBe(143);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatch(
      new RegExp(
        `^::error::interrupted by SIGTERM before the run finished; ${output} holds the new layout \\(sha256:[0-9a-f]{64}\\), but the run did not finish; run it again$`,
      ),
    );
    expect(await readdir(parent)).toEqual(['layout']);
    expect(existsSync(filler)).toBe(false);
    expect(diffTrees(await sourceTree(small), await unpacked(output))).toEqual([]);
  });

  it("removes a dead run's leftovers next to output, keeps a live run's, and captures neither", async () => {
    const root = await tmpDir('interrupt-leftovers');
    await writeFile(path.join(root, 'f'), 'kept\n');
    const output = path.join(root, 'layout');
    // Named as the action names them: pid, then a tag of this boot and pid namespace.
    const ns = createHash('sha256')
      .update(
        readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() + readlinkSync('/proc/self/ns/pid'),
      )
      .digest('hex')
      .slice(0, 8);
    const gone = await run('sh', ['-c', 'echo $$']);
    const deadPid = Number(gone.stdout.trim());
    const dead = [
      `.layout.partial-${deadPid}-${ns}-0badc0de`,
      `.layout.partial-${deadPid}-${ns}-0badc0de.old`,
    ];
    // This test's own pid is running; the second is named as older versions did (owner unknown).
    const alive = [`.layout.partial-${process.pid}-${ns}-11ecc0de`, '.layout.partial-abcd1234'];
    for (const name of [...dead, ...alive]) {
      await mkdir(path.join(root, name, 'blobs', 'sha256'), { recursive: true });
      await writeFile(path.join(root, name, 'blobs', 'sha256', 'leftover'), randomBytes(1024));
    }
    const r = await runAction({ root, 'dry-run': 'true', output });
    expect(r.errors).toEqual([]);
    expect((await readdir(root)).sort()).toEqual(['f', 'layout', ...alive].sort());
    // Only `f`: the layout and every staging directory next to it are left out of the capture.
    const source = await sourceTree(root, { ignore: (p) => !['.', 'f'].includes(p.toString()) });
    expect(diffTrees(source, await unpacked(output), { ignoreDirMtime: true })).toEqual([]);
  });
  it('a SIGTERM while the pre step writes its baseline exits 143 with one line and leaves no partial file', async () => {
    // Enough entries that the baseline takes a while to write: the signal lands while its file is open.
    const root = await tmpDir('interrupt-pre');
    for (let d = 0; d < 40; d++) {
      const dir = path.join(root, `d${d}`);
      await mkdir(dir);
      await Promise.all(Array.from({ length: 1000 }, (_, f) => writeFile(path.join(dir, `f${f}`), '')));
    }
    const dir = await tmpDir('interrupt-pre-baseline');
    const baseline = path.join(dir, 'baseline.gz');
    for (let tries = 0; ; tries++) {
      expect(tries, 'the pre step never was caught writing its baseline').toBeLessThan(10);
      const running = await startAction({ root, baseline }, { pre: true });
      const tmp = `${baseline}.${running.child.pid}.tmp`;
      while (running.child.exitCode === null && !existsSync(tmp)) await new Promise((r) => setTimeout(r, 2));
      if (running.child.exitCode !== null) {
        await running.result;
        await rm(baseline, { force: true });
        continue; // finished first: try again
      }
      running.child.kill('SIGTERM');
      const r = await running.result;
      expect(r.code).toBe(143);
      expect(r.errors).toEqual([
        `::error::interrupted by SIGTERM before the run finished; no new baseline was written at ${baseline}; run it again`,
      ]);
      // No baseline and no partial file: only the inventory, recorded whole before the walk began.
      expect(await readdir(dir)).toEqual(['baseline.gz.inventory.json']);
      expect(JSON.parse(await readFile(`${baseline}.inventory.json`, 'utf8')).packages).toEqual([]);
      return;
    }
  });
});
