import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readXattrs, XattrReader } from '../../src/walk/xattrs.js';
import { silentLogger } from '../../src/log.js';

describe('XattrReader', () => {
  let dir: string;
  const files: string[] = [];
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'xattr-reader-'));
    for (let i = 0; i < 5000; i++) {
      const f = path.join(dir, `f${i}`);
      await writeFile(f, '');
      files.push(f);
    }
    // Every 97th file gets two user xattrs, given in reverse name order; one gets a binary value.
    const marked = files.filter((_, i) => i % 97 === 0);
    for (const f of marked) {
      execFileSync('setfattr', ['-n', 'user.zz', '-v', path.basename(f), f]);
      execFileSync('setfattr', ['-n', 'user.aa', '-v', '0sAP8Agw==', f]);
    }
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const readAll = async (paths: string[]) => {
    const reader = new XattrReader(silentLogger);
    paths.forEach((p, i) => reader.add(i, Buffer.from(p)));
    return reader.finish();
  };

  it('on a worker (over one batch): the same xattrs as reading each path, keyed by index', async () => {
    const found = await readAll(files);
    expect([...found.keys()].sort((a, b) => a - b)).toEqual(
      files.map((_, i) => i).filter((i) => i % 97 === 0),
    );
    for (const [i, xattrs] of found) expect(xattrs).toEqual(readXattrs(Buffer.from(files[i]), silentLogger));
    expect(found.get(97)).toEqual([
      ['user.aa', Buffer.from([0, 0xff, 0, 0x83])],
      ['user.zz', Buffer.from('f97')],
    ]);
  });

  it('on its own thread (a small walk), and an entry gone before its xattrs were read gets none', async () => {
    const gone = path.join(dir, 'gone');
    await writeFile(gone, '');
    execFileSync('setfattr', ['-n', 'user.x', '-v', '1', gone]);
    await unlink(gone);
    const found = await readAll([files[0], gone, files[1]]);
    expect([...found.keys()]).toEqual([0]);
  });
});

describe('xattr names a tar record cannot carry as they are', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'xattr-names-'));
    // A UTF-8 path (the binding) and a non-UTF-8 one (getfattr), each with every kind of name.
    execFileSync('bash', [
      '-c',
      `cd "$1" && for f in plain $'not-utf8-\\xfe'; do : > "$f"; setfattr -n user.a=b -v v1 "$f"; setfattr -n $'user.\\xff' -v v2 "$f"; setfattr -n 'user.back\\slash' -v v3 "$f"; done`,
      '-',
      dir,
    ]);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const expected = [
    ['user.back\\slash', Buffer.from('v3')],
    [Buffer.from([...Buffer.from('user.'), 0xff]).toString('latin1'), Buffer.from('v2')],
  ];

  it('carries non-UTF-8 names as their bytes and leaves out names with "=", with a warning', () => {
    for (const name of [Buffer.from('plain'), Buffer.from([...Buffer.from('not-utf8-'), 0xfe])]) {
      const warned: string[] = [];
      const file = Buffer.concat([Buffer.from(dir + '/'), name]);
      const found = readXattrs(file, { ...silentLogger, warn: (m) => warned.push(m) });
      expect(found).toEqual(expected);
      expect(warned).toHaveLength(1);
      expect(warned[0]).toMatch(/extended attribute "user\.a=b" left out: its name holds "="/);
    }
  });

  it('the same through the worker (over one batch)', async () => {
    await writeFile(path.join(dir, 'none'), '');
    const warned: string[] = [];
    const reader = new XattrReader({ ...silentLogger, warn: (m) => warned.push(m) });
    for (let i = 0; i < 2100; i++) reader.add(i, Buffer.from(path.join(dir, 'none')));
    reader.add(2100, Buffer.from(path.join(dir, 'plain')));
    const found = await reader.finish();
    expect([...found]).toEqual([[2100, expected]]);
    expect(warned).toHaveLength(1);
  });
});
