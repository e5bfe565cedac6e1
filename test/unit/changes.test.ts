import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { appendFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { baselineSource, writeBaseline } from '../../src/diff/baseline.js';
import { chooseMethod } from '../../src/diff/changes.js';
import { buildFilter } from '../../src/walk/scan.js';
import { walk } from '../../src/walk/walk.js';
import type { Overlay } from '../../src/diff/overlay.js';
import { silentLogger } from '../../src/log.js';

const overlay: Overlay = { upper: '/rw/upper', mounted: true, given: false };
const scan = { root: '/', exclude: [], include: [], ownPaths: [], rewritten: [], log: silentLogger };
const BASELINE = '/runner/tmp/baseline.gz';
const baselineThere = (f: string): boolean => f === BASELINE;
const nothingThere = () => false;

function choose(
  mode: 'auto' | 'overlay' | 'baseline' | 'full',
  hasBase: boolean,
  found: Overlay | null,
  exists = baselineThere,
) {
  return chooseMethod({ mode, baseline: BASELINE, hasBase, scan }, found, exists);
}

describe('chooseMethod', () => {
  it('auto: the overlay first, then the baseline, then everything', () => {
    expect(choose('auto', true, overlay).method).toBe('overlay');
    expect(choose('auto', true, null).method).toBe('baseline');
    expect(choose('auto', true, null, nothingThere)).toMatchObject({
      method: 'full',
      reason: expect.stringMatching(/no baseline was recorded/),
    });
  });

  it('without a base image everything is taken, naming the change set that went unused', () => {
    expect(choose('auto', false, overlay).reason).toMatch(/overlay upper dir \/rw\/upper is not used/);
    expect(choose('auto', false, null).reason).toMatch(/baseline at .* is not used/);
    expect(choose('auto', false, null, nothingThere).reason).toBe(
      'no base image: the whole tree is captured',
    );
    expect(() => choose('overlay', false, overlay)).toThrow(/changes: overlay needs base-image/);
    expect(() => choose('baseline', false, null)).toThrow(/changes: baseline needs base-image/);
  });

  it('an explicit method is used or refused, never swapped for another', () => {
    expect(choose('baseline', true, overlay).method).toBe('baseline');
    expect(() => choose('baseline', true, overlay, nothingThere)).toThrow(/did the pre step run/);
    expect(() => choose('overlay', true, null)).toThrow(/not an overlay mount/);
    expect(choose('full', true, overlay)).toEqual({ method: 'full', reason: 'changes: full' });
    expect(choose('full', false, null).method).toBe('full');
  });

  it('says where an overlay given as upper comes from', () => {
    const given = { ...overlay, given: true, mounted: false };
    expect(choose('auto', true, given).reason).toMatch(/given as upper \(\/rw\/upper\)/);
  });
});

describe('baseline comparison', () => {
  let root: string;
  afterAll(() => rm(root, { recursive: true, force: true }));

  /** The entries a baseline comparison captures, by path, with their xattr names and values. */
  async function captured(baseline: string): Promise<Map<string, Record<string, string>>> {
    const { filter } = await buildFilter({ ...scan, root });
    const found = await baselineSource(baseline).read({ root, filter, log: silentLogger });
    return new Map(
      [...found.entries].map((e) => [
        e.path.toString(),
        Object.fromEntries((e.xattrs ?? []).map(([n, v]) => [n, v.toString()])),
      ]),
    );
  }

  it('reads no xattrs of an entry as recorded, and sees a changed xattr by its ctime', async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'baseline-xattrs-'));
    for (const d of ['kept', 'parent']) await mkdir(path.join(root, d));
    for (const f of ['kept/f', 'parent/child', 'relabelled', 'untouched'])
      await writeFile(path.join(root, f), f);
    const setfattr = (name: string, value: string, file: string) =>
      execFileSync('setfattr', ['-n', name, '-v', value, path.join(root, file)]);
    setfattr('user.dir', 'parent-label', 'parent');
    setfattr('user.label', 'before', 'relabelled');
    setfattr('user.label', 'same', 'untouched');
    const baseline = path.join(root, '..', `${path.basename(root)}.baseline.gz`);
    const { filter } = await buildFilter({ ...scan, root });
    const walked = await walk({ root, filter, log: silentLogger, keepIdentity: true });
    await writeBaseline(baseline, root, walked.entries);
    // ctime has a clock tick's resolution: a change in the same tick as the baseline would not show.
    await new Promise((r) => setTimeout(r, 20));

    expect(await captured(baseline)).toEqual(new Map());

    // Only an xattr changes: its ctime moves, so the file is captured, with the new value.
    setfattr('user.label', 'after', 'relabelled');
    // A child changes: its parent comes along, with the xattrs it had all along.
    await appendFile(path.join(root, 'parent/child'), '!');
    expect(await captured(baseline)).toEqual(
      new Map([
        ['parent', { 'user.dir': 'parent-label' }],
        ['parent/child', {}],
        ['relabelled', { 'user.label': 'after' }],
      ]),
    );
  });
});
