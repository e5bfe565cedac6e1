import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseMountInfo, readSwapFiles } from '../../src/walk/mountinfo.js';

const lines = [
  '22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro',
  '25 22 0:23 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw',
  '36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue',
  '40 22 0:40 / /var/lib/docker/overlay2/abc/merged rw,relatime shared:1 master:2 - overlay overlay rw,lowerdir=/l1:/l2,upperdir=/u,workdir=/w',
  '41 22 0:41 / /tmp rw,nosuid,nodev - tmpfs tmpfs rw,size=1024k',
  '42 22 0:42 / /my\\040dir/tab\\011nl\\012bs\\134end rw - tmpfs none rw,opt=a\\040b',
  '43 22 0:43 / /lit\\134040eral rw - ext4 /dev/sdb rw',
  'garbage line without separator',
  '',
];

describe('parseMountInfo', () => {
  const mounts = parseMountInfo(Buffer.from(lines.join('\n') + '\n', 'latin1'));

  it('reads mount point, type and super options with or without optional fields', () => {
    expect(mounts.map((m) => [m.mountPoint.toString(), m.fsType])).toEqual([
      ['/', 'ext4'],
      ['/proc', 'proc'],
      ['/mnt2', 'ext3'],
      ['/var/lib/docker/overlay2/abc/merged', 'overlay'],
      ['/tmp', 'tmpfs'],
      ['/my dir/tab\tnl\nbs\\end', 'tmpfs'],
      ['/lit\\040eral', 'ext4'],
    ]);
    expect(mounts[0].superOptions).toBe('rw,errors=remount-ro');
    expect(mounts[3].superOptions).toBe('rw,lowerdir=/l1:/l2,upperdir=/u,workdir=/w');
    expect(mounts[5].superOptions).toBe('rw,opt=a b');
  });

  it('keeps mount point bytes that are not UTF-8', () => {
    const raw = Buffer.concat([
      Buffer.from('50 22 0:50 / /data/'),
      Buffer.from([0xff, 0xc3]),
      Buffer.from(' rw - ext4 /dev/x rw\n'),
    ]);
    expect(parseMountInfo(raw)[0].mountPoint).toEqual(
      Buffer.concat([Buffer.from('/data/'), Buffer.from([0xff, 0xc3])]),
    );
  });

  it('decodes octal escapes in the mount point to the raw byte', () => {
    const [m] = parseMountInfo(Buffer.from('51 22 0:51 / /x\\377y rw - ext4 /dev/x rw\n'));
    expect(m.mountPoint).toEqual(Buffer.from([0x2f, 0x78, 0xff, 0x79]));
  });

  it('skips lines that are too short', () => {
    expect(parseMountInfo(Buffer.from('1 2 3 - ext4\n'))).toEqual([]);
  });
});

describe('readSwapFiles', () => {
  let dir: string;
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('lists swap files, not partitions, escapes decoded', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'swaps-'));
    const file = path.join(dir, 'swaps');
    await writeFile(
      file,
      [
        'Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority',
        '/dev/sda2                               partition\t8388604\t\t0\t\t-2',
        '/swapfile                               file\t\t2097148\t\t0\t\t-3',
        '/var/swap\\040file                       file\t\t1024\t\t0\t\t-4',
        '',
      ].join('\n'),
    );
    expect((await readSwapFiles(file)).map(String)).toEqual(['/swapfile', '/var/swap file']);
  });

  it('is empty when the file is missing', async () => {
    expect(await readSwapFiles('/nonexistent/swaps')).toEqual([]);
  });
});
