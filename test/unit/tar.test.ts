import { extract, type Header } from 'tar-stream';
import { describe, expect, it } from 'vitest';
import {
  BLOCK,
  encodeHeader,
  encodeHeaderInto,
  encodePaxRecords,
  END_OF_ARCHIVE,
  zeroPad,
  type TarHeader,
} from '../../src/layer/tar.js';

const MTIME = 1_700_000_000;

/** tar-stream's header, with the PAX records it read (typed `unknown` there). */
type Read = Omit<Header, 'pax'> & { pax: Record<string, string> | null };

function hdr(over: Omit<Partial<TarHeader>, 'name'> & { name: Buffer | string }): TarHeader {
  const { name, ...rest } = over;
  return {
    type: 'file',
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: 0,
    mtimeSec: MTIME,
    mtimeNsec: 0,
    ...rest,
    name: typeof name === 'string' ? Buffer.from(name) : name,
  };
}

/** All headers of a one-entry archive, as tar-stream reads them (data, if any, is zeros). */
async function read(h: TarHeader): Promise<Read> {
  const data = h.type === 'file' ? Buffer.alloc(h.size) : Buffer.alloc(0);
  const ex = extract();
  ex.end(Buffer.concat([encodeHeader(h), data, zeroPad(data.length), END_OF_ARCHIVE]));
  const out: Read[] = [];
  for await (const entry of ex) {
    out.push(entry.header as Read);
    entry.resume();
  }
  expect(out).toHaveLength(1);
  return out[0];
}

/** The first header tar-stream reports, without feeding any data after it. */
function firstHeader(buf: Buffer): Promise<Read> {
  return new Promise((resolve, reject) => {
    const ex = extract();
    ex.on('entry', (header) => {
      resolve(header as Read);
      ex.destroy();
    });
    ex.on('error', reject);
    ex.write(buf);
  });
}

const octal = (b: Buffer, off: number, len: number) =>
  parseInt(cstr(b.subarray(off, off + len)).toString(), 8);
const cstr = (b: Buffer) => (b.indexOf(0) < 0 ? b : b.subarray(0, b.indexOf(0)));
/** The ustar block of an entry: always the last block of encodeHeader's output. */
const ustar = (buf: Buffer) => buf.subarray(buf.length - BLOCK);

/** The PAX data of an encoded header, or null when there is no PAX header. */
function paxBody(buf: Buffer): Buffer | null {
  if (buf[156] !== 0x78) return null;
  return buf.subarray(BLOCK, BLOCK + octal(buf, 124, 12));
}

/** Splits PAX data into records, checking each declared length lands on the record's newline. */
function records(body: Buffer): Array<{ len: number; key: string; value: Buffer }> {
  const out = [];
  let pos = 0;
  while (pos < body.length) {
    const space = body.indexOf(0x20, pos);
    const len = Number(body.subarray(pos, space).toString());
    const rec = body.subarray(pos, pos + len);
    expect(rec.length).toBe(len);
    expect(rec[len - 1]).toBe(0x0a);
    const eq = rec.indexOf(0x3d);
    out.push({
      len,
      key: rec.subarray(space - pos + 1, eq).toString('latin1'),
      value: rec.subarray(eq + 1, len - 1),
    });
    pos += len;
  }
  expect(pos).toBe(body.length);
  return out;
}

/** Independent length of `"%d key=value\n"`: the smallest prefix that counts its own digits. */
function recordLen(keyBytes: number, valueBytes: number): number {
  const rest = 3 + keyBytes + valueBytes;
  for (let d = 1; ; d++) if (String(rest + d).length === d) return rest + d;
}

function checksumValid(block: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i];
  return sum === octal(block, 148, 8);
}

describe('encodeHeader read back by tar-stream', () => {
  it('plain file', async () => {
    const h = await read(hdr({ name: 'etc/passwd', size: 5, mode: 0o4755, uid: 1000, gid: 100 }));
    expect(h).toMatchObject({ name: 'etc/passwd', type: 'file', size: 5, mode: 0o4755, uid: 1000, gid: 100 });
    expect(h.mtime?.getTime()).toBe(MTIME * 1000);
    expect(h.pax).toBeNull();
  });

  it('directory gets a trailing slash (once)', async () => {
    expect(await read(hdr({ name: 'usr/lib', type: 'dir', mode: 0o1777 }))).toMatchObject({
      name: 'usr/lib/',
      type: 'directory',
      mode: 0o1777,
      size: 0,
    });
    expect((await read(hdr({ name: 'usr/', type: 'dir' }))).name).toBe('usr/');
  });

  it('symlink, hardlink, fifo', async () => {
    const link = Buffer.from('../lib/libc.so.6');
    expect(await read(hdr({ name: 'a', type: 'symlink', linkName: link }))).toMatchObject({
      type: 'symlink',
      linkname: '../lib/libc.so.6',
    });
    expect(
      await read(hdr({ name: 'b', type: 'hardlink', linkName: Buffer.from('usr/bin/a') })),
    ).toMatchObject({
      type: 'link',
      linkname: 'usr/bin/a',
      size: 0,
    });
    expect((await read(hdr({ name: 'c', type: 'fifo' }))).type).toBe('fifo');
  });

  it('long link target goes to PAX linkpath', async () => {
    const target = 'x/'.repeat(80);
    const h = await read(hdr({ name: 'l', type: 'symlink', linkName: Buffer.from(target) }));
    expect(h.linkname).toBe(target);
    expect(h.pax?.linkpath).toBe(target);
  });

  it('char and block devices carry major/minor', async () => {
    expect(await read(hdr({ name: 'dev/null', type: 'char', devMajor: 1, devMinor: 3 }))).toMatchObject({
      type: 'character-device',
      devmajor: 1,
      devminor: 3,
    });
    expect(await read(hdr({ name: 'dev/sda', type: 'block', devMajor: 8, devMinor: 1048575 }))).toMatchObject(
      {
        type: 'block-device',
        devmajor: 8,
        devminor: 1048575,
      },
    );
  });

  it('100-byte name fills the name field, no PAX', async () => {
    const name = 'n'.repeat(100);
    const buf = encodeHeader(hdr({ name }));
    expect(buf.length).toBe(BLOCK);
    expect(buf.subarray(0, 100).toString()).toBe(name);
    expect((await read(hdr({ name }))).name).toBe(name);
  });

  it('200-byte name splits into ustar prefix and name', async () => {
    const name = 'd'.repeat(120) + '/' + 'f'.repeat(79);
    const buf = encodeHeader(hdr({ name }));
    expect(buf.length).toBe(BLOCK);
    expect(cstr(buf.subarray(0, 100)).toString()).toBe('f'.repeat(79));
    expect(cstr(buf.subarray(345, 500)).toString()).toBe('d'.repeat(120));
    expect((await read(hdr({ name }))).name).toBe(name);
  });

  it('256 bytes split at the last possible slash; 256 bytes with no valid split use PAX', async () => {
    const fits = 'p'.repeat(155) + '/' + 'n'.repeat(100);
    expect(encodeHeader(hdr({ name: fits })).length).toBe(BLOCK);
    expect((await read(hdr({ name: fits }))).name).toBe(fits);
    const noSplit = 'p'.repeat(156) + '/' + 'n'.repeat(99); // prefix would be 156 bytes
    expect(records(paxBody(encodeHeader(hdr({ name: noSplit })))!)).toEqual([
      { len: recordLen(4, 256), key: 'path', value: Buffer.from(noSplit) },
    ]);
  });

  it('a 100-byte directory name without a slash needs PAX once the slash is added', async () => {
    const name = 'd'.repeat(100);
    const h = await read(hdr({ name, type: 'dir' }));
    expect(h.name).toBe(name + '/');
    expect(h.pax?.path).toBe(name + '/');
  });

  it('path over 256 bytes goes to PAX path', async () => {
    const name = Array.from({ length: 30 }, (_, i) => `dir${String(i).padStart(6, '0')}`).join('/');
    expect(name.length).toBeGreaterThan(256);
    const buf = encodeHeader(hdr({ name }));
    expect(buf.subarray(0, BLOCK).subarray(0, 11).toString()).toBe('PaxHeaders/');
    expect(
      records(paxBody(buf)!)
        .find((r) => r.key === 'path')
        ?.value.toString(),
    ).toBe(name);
    expect((await read(hdr({ name }))).name).toBe(name);
  });

  it('non-UTF-8 name bytes are written verbatim (ustar field and PAX path)', () => {
    const short = Buffer.from([0x66, 0xff, 0xfe, 0x2f, 0x80, 0x61]);
    const buf = encodeHeader(hdr({ name: short }));
    expect(buf.length).toBe(BLOCK);
    expect(cstr(buf.subarray(0, 100))).toEqual(short);

    const long = Buffer.concat([Buffer.from('a/'.repeat(130)), Buffer.from([0xc3, 0x28, 0xff])]);
    const body = paxBody(encodeHeader(hdr({ name: long })))!;
    expect(records(body)).toEqual([{ len: recordLen(4, long.length), key: 'path', value: long }]);
  });

  it('uid/gid up to 2097151 stay octal; from 2097152 they go to PAX', async () => {
    expect(encodeHeader(hdr({ name: 'f', uid: 2097151, gid: 2097151 })).length).toBe(BLOCK);
    const buf = encodeHeader(hdr({ name: 'f', uid: 2097152, gid: 100000000 }));
    expect(records(paxBody(buf)!).map((r) => [r.key, r.value.toString()])).toEqual([
      ['uid', '2097152'],
      ['gid', '100000000'],
    ]);
    expect(octal(ustar(buf), 108, 8)).toBe(0o7777777);
    const h = await read(hdr({ name: 'f', uid: 2097152, gid: 100000000 }));
    expect(h.pax).toMatchObject({ uid: '2097152', gid: '100000000' });
  });

  it('size over 8 GiB - 1: PAX size and a base-256 ustar field', async () => {
    const max = 8 * 1024 ** 3 - 1;
    const atMax = encodeHeader(hdr({ name: 'big', size: max }));
    expect(atMax.length).toBe(BLOCK);
    expect(octal(atMax, 124, 12)).toBe(max);

    const size = 8 * 1024 ** 3 + 12345;
    const buf = encodeHeader(hdr({ name: 'big', size }));
    expect(records(paxBody(buf)!)).toEqual([
      { len: recordLen(4, String(size).length), key: 'size', value: Buffer.from(String(size)) },
    ]);
    const field = ustar(buf).subarray(124, 136);
    expect(field[0]).toBe(0x80);
    let v = 0;
    for (const byte of field.subarray(1)) v = v * 256 + byte;
    expect(v).toBe(size);
    expect((await firstHeader(buf)).size).toBe(size);
  });

  it.each([
    [MTIME, 123456789, `${MTIME}.123456789`],
    [MTIME, 500000000, `${MTIME}.5`],
    [MTIME, 120000000, `${MTIME}.12`],
    [MTIME, 1000, `${MTIME}.000001`],
    [-2, 750000000, '-1.25'],
    [-1, 500000000, '-0.5'],
    [-86400, 0, '-86400'],
  ])('mtime %d s + %d ns → PAX mtime %s', (mtimeSec, mtimeNsec, want) => {
    const buf = encodeHeader(hdr({ name: 'f', mtimeSec, mtimeNsec }));
    expect(records(paxBody(buf)!).map((r) => [r.key, r.value.toString()])).toEqual([['mtime', want]]);
    expect(octal(ustar(buf), 136, 12)).toBe(Math.max(mtimeSec, 0));
  });

  it('whole-second mtime needs no PAX', () => {
    expect(encodeHeader(hdr({ name: 'f', mtimeSec: 0 })).length).toBe(BLOCK);
  });

  it('binary xattr values are written byte for byte', () => {
    const cap = Buffer.from([
      0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0x80, 0xff, 0xfe, 0x0a, 0x3d, 0x00,
    ]);
    const buf = encodeHeader(hdr({ name: 'usr/bin/ping', xattrs: [['security.capability', cap]] }));
    const needle = Buffer.concat([Buffer.from('SCHILY.xattr.security.capability='), cap, Buffer.from('\n')]);
    expect(buf.indexOf(needle)).toBeGreaterThan(BLOCK);
    expect(records(paxBody(buf)!)).toEqual([
      {
        len: recordLen('SCHILY.xattr.security.capability'.length, cap.length),
        key: 'SCHILY.xattr.security.capability',
        value: cap,
      },
    ]);
  });

  it('xattrs are sorted by name, whatever order they come in', () => {
    const xs: Array<[string, Buffer]> = [
      ['user.b', Buffer.from('2')],
      ['security.capability', Buffer.from([0])],
      ['user.a', Buffer.from('1')],
      ['trusted.x', Buffer.from('3')],
    ];
    const buf = encodeHeader(hdr({ name: 'f', xattrs: xs }));
    const keys = records(paxBody(buf)!).map((r) => r.key);
    expect(keys).toEqual([
      'SCHILY.xattr.security.capability',
      'SCHILY.xattr.trusted.x',
      'SCHILY.xattr.user.a',
      'SCHILY.xattr.user.b',
    ]);
    expect(encodeHeader(hdr({ name: 'f', xattrs: [...xs].reverse() }))).toEqual(buf);
  });

  // Xattr names are latin1 strings of their bytes, UTF-8 or not: written byte for byte.
  it('non-ASCII and non-UTF-8 xattr names: their bytes verbatim, declared record lengths right', () => {
    const utf8 = Buffer.from('user.caf\u00e9').toString('latin1');
    const notUtf8 = Buffer.from([...Buffer.from('user.'), 0xff, 0xfe]).toString('latin1');
    const buf = encodeHeader(
      hdr({
        name: 'f',
        xattrs: [
          [utf8, Buffer.from('v')],
          [notUtf8, Buffer.from('w')],
        ],
      }),
    );
    expect(records(paxBody(buf)!)).toEqual([
      { len: recordLen(13 + 10, 1), key: 'SCHILY.xattr.' + utf8, value: Buffer.from('v') },
      { len: recordLen(13 + 7, 1), key: 'SCHILY.xattr.' + notUtf8, value: Buffer.from('w') },
    ]);
    expect(buf.includes(Buffer.from([0x2e, 0xff, 0xfe, 0x3d]))).toBe(true);
  });

  // A reader splits a record at its first `=`: `user.a=b` = `v` would read back as `user.a` = `b=v`.
  it('refuses an xattr name holding "="', () => {
    expect(() => encodeHeader(hdr({ name: 'f', xattrs: [['user.a=b', Buffer.from('v')]] }))).toThrow(
      /xattr name "user.a=b": it holds "="/,
    );
  });

  it('every header checksum is valid and output is block aligned', () => {
    const cases = [
      hdr({ name: 'f', size: 3 }),
      hdr({ name: 'x'.repeat(300), uid: 3_000_000, mtimeNsec: 1, xattrs: [['user.k', Buffer.from([0xff])]] }),
      hdr({ name: 'dev/tty', type: 'char', devMajor: 5, devMinor: 0 }),
    ];
    for (const h of cases) {
      const buf = encodeHeader(h);
      expect(buf.length % BLOCK).toBe(0);
      expect(checksumValid(ustar(buf))).toBe(true);
      if (paxBody(buf)) expect(checksumValid(buf.subarray(0, BLOCK))).toBe(true);
    }
  });

  it('is deterministic', () => {
    const make = () =>
      hdr({
        name: 'a/'.repeat(150) + 'z',
        mtimeNsec: 42,
        uid: 5_000_000,
        xattrs: [['user.a', Buffer.from([1, 2, 3])]],
      });
    expect(encodeHeader(make()).equals(encodeHeader(make()))).toBe(true);
  });

  it('encodeHeaderInto writes the same bytes into a used buffer, or says it does not fit', () => {
    const cases = [
      hdr({ name: 'f', size: 3 }),
      hdr({ name: 'a/'.repeat(150) + 'z', mtimeNsec: 42, uid: 5_000_000, linkName: Buffer.alloc(150, 0x6c) }),
      hdr({ name: 'd', type: 'dir', xattrs: [['user.k', Buffer.from([0xff, 0])]] }),
    ];
    for (const h of cases) {
      const want = encodeHeader(h);
      // Garbage before, in and after: every byte of the header is written, none past it.
      const out = Buffer.alloc(want.length + 20, 0xee);
      expect(encodeHeaderInto(h, out, 7)).toBe(7 + want.length);
      expect(out.subarray(7, 7 + want.length).equals(want)).toBe(true);
      expect(out.subarray(7 + want.length).equals(Buffer.alloc(13, 0xee))).toBe(true);
      expect(encodeHeaderInto(h, Buffer.alloc(want.length + 6), 7)).toBe(-1);
    }
  });
});

describe('encodePaxRecords length prefix', () => {
  // Record "%d k=<value>\n": rest = 3 + key + value bytes; lengths around 9→10 and 99→100 digits.
  it.each([4, 5, 6, 93, 94, 95, 96, 97, 994, 995, 996])('key "k", %d-byte value', (n) => {
    const value = Buffer.alloc(n, 0x76);
    const body = encodePaxRecords([['k', value]]);
    const len = recordLen(1, n);
    expect(body.length).toBe(len);
    expect(body.toString('latin1')).toBe(`${len} k=${value.toString('latin1')}\n`);
  });

  it('known boundary records, counted by hand', () => {
    expect(encodePaxRecords([['a', Buffer.from('xxxx')]]).toString()).toBe('9 a=xxxx\n');
    expect(encodePaxRecords([['a', Buffer.from('xxxxx')]]).toString()).toBe('11 a=xxxxx\n');
    // "99 a=" + 93 bytes + "\n" is 99; one more byte cannot be 100 (that needs a 3-digit prefix): 101.
    const v93 = 'y'.repeat(93);
    expect(encodePaxRecords([['a', Buffer.from(v93)]]).toString()).toBe(`99 a=${v93}\n`);
    const v94 = 'y'.repeat(94);
    expect(encodePaxRecords([['a', Buffer.from(v94)]]).toString()).toBe(`101 a=${v94}\n`);
  });

  it('many records in a row each declare their own length', () => {
    const input: Array<[string, Buffer]> = [];
    for (let n = 0; n < 120; n++) input.push([`key${n % 7}`, Buffer.alloc(n, n % 2 ? 0x0a : 0x00)]);
    const recs = records(encodePaxRecords(input));
    expect(recs.map((r) => [r.key, r.value])).toEqual(input);
    recs.forEach((r, i) => expect(r.len).toBe(recordLen(input[i][0].length, input[i][1].length)));
  });

  it('through encodeHeader: PAX path records around 999→1000', () => {
    for (let n = 988; n <= 993; n++) {
      const name = ('abcdefgh/'.repeat(120) + 'z'.repeat(n)).slice(0, n);
      const recs = records(paxBody(encodeHeader(hdr({ name })))!);
      expect(recs).toEqual([{ len: recordLen(4, n), key: 'path', value: Buffer.from(name) }]);
    }
  });
});

describe('names that could land outside the root', () => {
  it.each([
    '../etc/passwd',
    'a/../../etc/passwd',
    'a/..',
    '..',
    '/etc/passwd',
    '/',
    '',
    'a//b',
    './a',
    'a/./b',
    'a\0b',
  ])('refuses %j as a name', (name) => {
    expect(() => encodeHeader(hdr({ name }))).toThrow(/refusing to write the tar name/);
  });

  it.each(['../x', '/etc/shadow', 'a/../../x'])('refuses %j as a hardlink target', (target) => {
    expect(() => encodeHeader(hdr({ name: 'ok', type: 'hardlink', linkName: Buffer.from(target) }))).toThrow(
      /refusing to write the tar hardlink target/,
    );
  });

  it('refuses a non-UTF-8 name with a .. component too', () => {
    const name = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('/../x')]);
    expect(() => encodeHeader(hdr({ name }))).toThrow(/"\." or "\.\." component/);
  });

  it.each(['..foo', 'foo..', 'a/...', '.wh..wh..opq', 'a/.wh.b', '.hidden', 'dir/'])(
    'accepts %j',
    async (name) => {
      expect((await read(hdr({ name, type: name.endsWith('/') ? 'dir' : 'file' }))).name).toBe(name);
    },
  );

  it('keeps a symlink target as text, even one that points far outside', async () => {
    const linkName = Buffer.from('../../../../etc/shadow');
    const h = await read(hdr({ name: 'link', type: 'symlink', linkName }));
    expect(h.linkname).toBe('../../../../etc/shadow');
  });
});
