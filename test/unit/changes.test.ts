import { describe, expect, it } from 'vitest';
import { chooseMethod } from '../../src/diff/changes.js';
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
