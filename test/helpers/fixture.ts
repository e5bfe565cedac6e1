// A directory tree holding every kind of entry and metadata a faithful capture must keep.
// Needs root (devices, chown, setcap) and a filesystem with user xattrs (ext4, xfs; tmpfs only from Linux 6.6).
import { randomBytes } from 'node:crypto';
import {
  chmod,
  lchown,
  link,
  lstat,
  mkdir,
  mkdtemp,
  open,
  readdir,
  rename,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { check } from './tools.js';

/** mtimes the fixture sets (touch -d syntax): nanosecond precision on purpose. */
export const FIXTURE_MTIME = '@1700000000.123456789'; // files, symlinks, specials
export const FIXTURE_DIR_MTIME = '@1700000100.987654321'; // directories (set last)
export const FIXTURE_MTIME_NS = '1700000000123456789';
export const FIXTURE_DIR_MTIME_NS = '1700000100987654321';

/** uid/gid above 16 bits, and the largest values chown(1) accepts (2^32-1 means "unchanged"). */
export const BIG_IDS = { uid: 100000, gid: 200000 };
export const HUGE_IDS = { uid: 3000000000, gid: 4294967294 };

export const SPARSE_SIZE = 1 << 30; // 1 GiB apparent
export const SPARSE_DATA_OFFSET = 512 * 1024 * 1024;
export const SPARSE_DATA_LENGTH = 4096;

/** Paths are relative to the fixture root; Buffers where the name is not valid UTF-8. */
export interface FixtureInfo {
  root: string;
  /** Unix socket: tar/OCI cannot carry it (a capture should skip or refuse it). */
  socket: string;
  /** 1 GiB apparent size, 4 KiB of random data at 512 MiB. */
  sparse: string;
  fifo: string;
  charDevice: string; // c 1 3
  blockDevice: string; // b 7 200
  /** The three names of one inode, in different directories. */
  hardlinks: string[];
  symlinks: { absolute: string; relative: string; dangling: string; nonUtf8Target: string };
  /** Target bytes of symlinks.nonUtf8Target. */
  nonUtf8LinkTarget: Buffer;
  nonUtf8Name: Buffer;
  longName: string; // 200-byte final component
  deepPath: string; // > 255 bytes in total
  newlineName: string;
  suid: string;
  sgidFile: string;
  sgidDir: string;
  stickyDir: string;
  bigIds: string; // owned by BIG_IDS
  hugeIds: string; // owned by HUGE_IDS
  ownedSymlink: string; // symlink owned by BIG_IDS (lchown)
  capNetRaw: string;
  capSetuid: string;
  xattrFile: string; // user.text + user.bin (+ user.empty with opts.emptyXattr)
  xattrDir: string;
  /** Binary value of user.bin on xattrFile (holds NUL and 0xff). */
  xattrBinValue: Buffer;
  regular: { empty: string; oneByte: string; k100: string; m3: string; mode0000: string; mode0600: string };
}

const NON_UTF8 = Buffer.from([0x66, 0xff, 0xfe, 0x2e, 0x62, 0x69, 0x6e]); // "f\xff\xfe.bin"
const NON_UTF8_TARGET = Buffer.from([0x74, 0x67, 0x74, 0x2d, 0xc3, 0x28, 0x80]); // "tgt-" + invalid UTF-8
const XATTR_BIN = Buffer.from([0x00, 0xff, 0x01, 0x80, 0x00, 0x7f, 0xfe, 0x0a]);

export interface FixtureOptions {
  /**
   * Also give xattrs/file an empty-valued xattr (user.empty). Off by default: a PAX record with an
   * empty value means "unset", so Go's archive/tar (umoci, containerd) drops it and no standard
   * tar layer can carry it.
   */
  emptyXattr?: boolean;
}

/** Builds the fixture inside `dir` (which must exist, ideally empty). Runs as root only. */
export async function makeFixtureTree(dir: string, opts: FixtureOptions = {}): Promise<FixtureInfo> {
  if (process.getuid?.() !== 0) throw new Error('makeFixtureTree needs root (devices, chown, setcap)');
  const p = (rel: string) => join(dir, rel);
  const mkdirs = (...rels: string[]) => Promise.all(rels.map((r) => mkdir(p(r), { recursive: true })));

  await mkdirs(
    'files',
    'names',
    'perm',
    'owners',
    'caps',
    'xattrs',
    'special',
    'links',
    'hardlinks/a',
    'hardlinks/b/c',
    'sparse',
  );

  // --- regular files of several sizes and modes
  const regular = {
    empty: 'files/empty',
    oneByte: 'files/one-byte',
    k100: 'files/random-100k',
    m3: 'files/random-3m',
    mode0000: 'files/mode0000',
    mode0600: 'files/mode0600',
  };
  await writeFile(p(regular.empty), '');
  await writeFile(p(regular.oneByte), 'x');
  await writeFile(p(regular.k100), randomBytes(100 * 1024));
  await writeFile(p(regular.m3), randomBytes(3 * 1024 * 1024));
  await writeFile(p(regular.mode0000), 'no permissions\n');
  await chmod(p(regular.mode0000), 0o000);
  await writeFile(p(regular.mode0600), 'private\n');
  await chmod(p(regular.mode0600), 0o600);
  await writeFile(p('x'), 'target of links/rel\n');

  // --- awkward names
  const nonUtf8Name = Buffer.concat([Buffer.from('names/'), NON_UTF8]);
  await writeFile(Buffer.concat([Buffer.from(dir + '/'), nonUtf8Name]), 'not utf-8 name\n');
  const longName = `names/${'L'.repeat(200)}`;
  await writeFile(p(longName), 'long name\n');
  const newlineName = 'names/with spaces\nand a newline';
  await writeFile(p(newlineName), 'newline in name\n');
  // Six 50-byte components + leaf: > 255 bytes (and > the 100/155-byte ustar fields).
  const deepDir = ['deep', ...Array.from({ length: 6 }, (_, i) => String(i).repeat(50))].join('/');
  await mkdir(p(deepDir), { recursive: true });
  const deepPath = `${deepDir}/leaf.txt`;
  await writeFile(p(deepPath), 'deep\n');

  // --- ownership. chown clears suid/sgid and security.capability, so it always comes first.
  const bigIds = 'owners/big-ids';
  const hugeIds = 'owners/huge-ids';
  await writeFile(p(bigIds), 'big ids\n');
  await lchown(p(bigIds), BIG_IDS.uid, BIG_IDS.gid);
  await writeFile(p(hugeIds), 'huge ids\n');
  await lchown(p(hugeIds), HUGE_IDS.uid, HUGE_IDS.gid);
  await lchown(p('owners'), BIG_IDS.uid, BIG_IDS.gid);

  // --- special permission bits
  const suid = 'perm/suid';
  const sgidFile = 'perm/sgid';
  const sgidDir = 'perm/sgid-dir';
  const stickyDir = 'perm/sticky-dir';
  await writeFile(p(suid), '#!/bin/sh\nexit 0\n');
  await lchown(p(suid), 0, 0);
  await chmod(p(suid), 0o4755);
  await writeFile(p(sgidFile), '#!/bin/sh\nexit 0\n');
  await lchown(p(sgidFile), 0, BIG_IDS.gid);
  await chmod(p(sgidFile), 0o2755);
  await writeFile(p('perm/all-bits'), 'suid+sgid+sticky\n');
  await chmod(p('perm/all-bits'), 0o7755);
  await mkdirs(sgidDir, stickyDir);
  await chmod(p(sgidDir), 0o2755);
  await chmod(p(stickyDir), 0o1777);
  await writeFile(p(`${stickyDir}/inside`), 'in sticky dir\n');

  // --- file capabilities (security.capability). cap_setuid is bit 7: a value byte of 0x80.
  const capNetRaw = 'caps/net-raw';
  const capSetuid = 'caps/setuid';
  await writeFile(p(capNetRaw), 'cap_net_raw\n');
  await chmod(p(capNetRaw), 0o755);
  await check('setcap', ['cap_net_raw+ep', p(capNetRaw)]);
  await writeFile(p(capSetuid), 'cap_setuid\n');
  await chmod(p(capSetuid), 0o755);
  await check('setcap', ['cap_setuid+ep', p(capSetuid)]);

  // --- user xattrs: text, binary (NUL, 0xff; given to setfattr as 0s<base64>), on a dir too
  const xattrFile = 'xattrs/file';
  const xattrDir = 'xattrs/dir';
  await writeFile(p(xattrFile), 'has xattrs\n');
  await mkdirs(xattrDir);
  await check('setfattr', ['-n', 'user.text', '-v', 'hello world', p(xattrFile)]);
  await check('setfattr', ['-n', 'user.bin', '-v', `0s${XATTR_BIN.toString('base64')}`, p(xattrFile)]);
  if (opts.emptyXattr) await check('setfattr', ['-n', 'user.empty', p(xattrFile)]); // no -v: empty value
  await check('setfattr', ['-n', 'user.dir', '-v', 'on a directory', p(xattrDir)]);
  // A name getfattr must escape (\012), to exercise the parser.
  await check('setfattr', ['-n', 'user.nl', '-v', 'newline-named file', p(newlineName)]);

  // --- fifo, devices, socket
  const fifo = 'special/fifo';
  const charDevice = 'special/char-1-3';
  const blockDevice = 'special/block-7-200';
  const socket = 'special/socket';
  await check('mkfifo', ['-m', '0640', p(fifo)]);
  await check('mknod', ['-m', '0666', p(charDevice), 'c', '1', '3']);
  await check('mknod', ['-m', '0660', p(blockDevice), 'b', '7', '200']);
  await makeSocketFile(p(socket));

  // --- symlinks (never followed by a faithful capture)
  const symlinks = {
    absolute: 'links/absolute',
    relative: 'links/relative',
    dangling: 'links/dangling',
    nonUtf8Target: 'links/non-utf8-target',
  };
  await symlink('/etc/passwd', p(symlinks.absolute));
  await symlink('../x', p(symlinks.relative));
  await symlink('no/such/target', p(symlinks.dangling));
  await symlink(NON_UTF8_TARGET, p(symlinks.nonUtf8Target));
  const ownedSymlink = 'links/owned';
  await symlink('../x', p(ownedSymlink));
  await lchown(p(ownedSymlink), BIG_IDS.uid, BIG_IDS.gid);

  // --- hardlink trio across directories
  const hardlinks = ['hardlinks/one', 'hardlinks/a/two', 'hardlinks/b/c/three'];
  await writeFile(p(hardlinks[0]), 'one inode, three names\n');
  await chmod(p(hardlinks[0]), 0o640);
  await link(p(hardlinks[0]), p(hardlinks[1]));
  await link(p(hardlinks[0]), p(hardlinks[2]));

  // --- sparse file
  const sparse = 'sparse/sparse.img';
  const fh = await open(p(sparse), 'w');
  try {
    await fh.truncate(SPARSE_SIZE);
    await fh.write(randomBytes(SPARSE_DATA_LENGTH), 0, SPARSE_DATA_LENGTH, SPARSE_DATA_OFFSET);
  } finally {
    await fh.close();
  }

  // --- mtimes last: non-directories first, then directories (creating children bumps a dir's mtime,
  // setting a child's times does not). Paths go through `xargs -0` so non-UTF-8 names survive.
  const { dirs, others } = await listTree(dir);
  await touchAll(dir, others, FIXTURE_MTIME);
  await touchAll(dir, dirs, FIXTURE_DIR_MTIME);

  return {
    root: dir,
    socket,
    sparse,
    fifo,
    charDevice,
    blockDevice,
    hardlinks,
    symlinks,
    nonUtf8LinkTarget: NON_UTF8_TARGET,
    nonUtf8Name,
    longName,
    deepPath,
    newlineName,
    suid,
    sgidFile,
    sgidDir,
    stickyDir,
    bigIds,
    hugeIds,
    ownedSymlink,
    capNetRaw,
    capSetuid,
    xattrFile,
    xattrDir,
    xattrBinValue: XATTR_BIN,
    regular,
  };
}

/**
 * Leaves a socket inode at `path`. Node unlinks a unix socket's path when the server closes, and
 * bind() paths are limited to 107 bytes, so bind at a short temporary path, rename the socket into
 * place while it is open, then close (the unlink of the old path then finds nothing).
 */
async function makeSocketFile(path: string): Promise<void> {
  const parent = join(path, '..');
  const shortDir = Buffer.byteLength(parent) < 90 ? parent : await mkdtemp(join(tmpdir(), 's'));
  const tmp = join(shortDir, `.sock-${process.pid}`);
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(tmp, () => resolve());
  });
  try {
    await rename(tmp, path); // EXDEV if os.tmpdir() is another filesystem: use a shorter fixture path
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
    if (shortDir !== parent) await rm(shortDir, { recursive: true, force: true });
  }
}

/** Relative paths (Buffers) of every entry under root, root itself as "." among the dirs. */
async function listTree(root: string): Promise<{ dirs: Buffer[]; others: Buffer[] }> {
  const dirs: Buffer[] = [Buffer.from('.')];
  const others: Buffer[] = [];
  const rootBuf = Buffer.from(root);
  const walk = async (rel: Buffer): Promise<void> => {
    const abs = rel.length ? Buffer.concat([rootBuf, Buffer.from('/'), rel]) : rootBuf;
    for (const name of await readdir(abs, { encoding: 'buffer' })) {
      const childRel = rel.length ? Buffer.concat([rel, Buffer.from('/'), name]) : name;
      const st = await lstat(Buffer.concat([abs, Buffer.from('/'), name]));
      if (st.isDirectory()) {
        dirs.push(childRel);
        await walk(childRel);
      } else {
        others.push(childRel);
      }
    }
  };
  await walk(Buffer.alloc(0));
  return { dirs, others };
}

/** `touch -h -d STAMP` on many paths relative to cwd; paths reach touch as raw bytes via xargs -0. */
async function touchAll(cwd: string, rels: Buffer[], stamp: string): Promise<void> {
  // "./" prefix so no name is taken for an option; NUL-separated so any byte but NUL/"/" is fine.
  const input = Buffer.concat(rels.flatMap((r) => [Buffer.from('./'), r, Buffer.from([0])]));
  await check('xargs', ['-0', '-r', 'touch', '-h', '-d', stamp, '--'], { cwd, input });
}
