import { describe, expect, it } from 'vitest';
import { joinPath } from '../../src/util/paths.js';

describe('joinPath', () => {
  it('joins with one slash, in an empty directory and in /, and keeps latin1 names byte for byte', () => {
    const b = (s: string) => Buffer.from(s, 'latin1');
    expect(joinPath(b('usr/lib'), b('x'))).toEqual(b('usr/lib/x'));
    expect(joinPath(b(''), b('x'))).toEqual(b('x'));
    expect(joinPath(b('/'), 'etc')).toEqual(b('/etc'));
    expect(joinPath(b('/srv'), 'caf\xe9')).toEqual(Buffer.from([...b('/srv/caf'), 0xe9]));
  });
});
