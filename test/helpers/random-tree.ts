// Random small trees for property tests, from a seed: every entry type (files, empty files, dirs,
// symlinks incl. dangling ones, hardlinks, fifos, char and block devices, sockets), awkward names
// (unicode, bytes that are not UTF-8, 255-byte components), modes with suid/sgid/sticky, uids and
// gids up to 2^32-2, nanosecond mtimes, user.* xattrs and security.capability; then random changes.
// Node does what it can in-process; the rest (mknod, mkfifo, setfattr, touch) is batched into one
// shell script per phase, so a batch of many trees costs a few processes. Needs root.
import {
  chmodSync,
  existsSync,
  lchownSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { check, tmpDir } from './tools.js';

/** mulberry32 with helpers. */
export class Random {
  private a: number;
  constructor(readonly seed: number) {
    this.a = seed >>> 0;
  }
  next(): number {
    this.a = (this.a + 0x6d2b79f5) >>> 0;
    let t = this.a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

const SLASH = Buffer.from('/');
const join = (dir: Buffer, name: Buffer) => Buffer.concat([dir, SLASH, name]);

const UNICODE = ['é', 'ß', '日本語', 'Ωμέγα', '🦀', 'ñandú', 'ק', '\u200b', 'ﬁ', 'Å'];
const PUNCT = [
  ' ',
  '-',
  '_',
  '.',
  '~',
  '+',
  '=',
  '#',
  '%',
  '@',
  '!',
  "'",
  '"',
  '\\',
  '\n',
  '\t',
  '*',
  '?',
  '[',
  ':',
];

/** A file name: never empty, `.`, `..`, with `/` or NUL, nor `.wh.*` (refused by design). */
export function randomName(r: Random): Buffer {
  const style = r.int(10);
  let name: Buffer;
  if (style === 0) {
    // a full 255-byte component
    name = Buffer.alloc(255, 0x61 + r.int(26));
  } else if (style === 1) {
    // bytes that are not UTF-8
    const raw = r.bytes(1 + r.int(12)).map((b) => (b === 0 || b === 0x2f ? 0xff : b | 0x80));
    name = Buffer.concat([Buffer.from('n'), raw]);
  } else if (style === 2) {
    name = Buffer.from(Array.from({ length: 1 + r.int(3) }, () => r.pick(UNICODE)).join('') + r.int(100));
  } else if (style === 3) {
    name = Buffer.from(`${r.pick(PUNCT)}${r.int(1000)}${r.pick(PUNCT)}x`);
  } else {
    const len = 1 + r.int(12);
    name = Buffer.from(
      Array.from({ length: len }, () => 'abcdefghijklmnopqrstuvwxyz0123456789'[r.int(36)]).join(''),
    );
  }
  if (
    name.toString('latin1').startsWith('.wh.') ||
    name.equals(Buffer.from('.')) ||
    name.equals(Buffer.from('..'))
  )
    name = Buffer.concat([Buffer.from('x'), name]);
  return name;
}

const IDS = [0, 1, 2, 33, 1000, 1001, 65534, 65535, 65536, 100000, 2 ** 21, 2 ** 31 - 1, 4294967294];

/** A shell word holding `bytes` verbatim (single quotes; a quote as '\''). */
function quote(bytes: Buffer): Buffer {
  const parts: Buffer[] = [Buffer.from("'")];
  let start = 0;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] !== 0x27) continue;
    parts.push(bytes.subarray(start, i), Buffer.from("'\\''"));
    start = i + 1;
  }
  parts.push(bytes.subarray(start), Buffer.from("'"));
  return Buffer.concat(parts);
}

/**
 * A shell command on `path` (quoted wherever it appears among `words`), run only while it still
 * applies: a later change may have removed `path`, its directory, or put something else there.
 */
function line(path: Buffer, ...words: Array<string | Buffer>): Buffer {
  const p = quote(path);
  const b = (...parts: Array<string | Buffer>) =>
    Buffer.concat(parts.map((x) => (typeof x === 'string' ? Buffer.from(x) : x)));
  const test =
    words[0] === 'mkfifo' || words[0] === 'mknod'
      ? b('[ -d "$(dirname -- ', p, ')" ] && [ ! -e ', p, ' ] && [ ! -h ', p, ' ]')
      : words[0] === 'setfattr'
        ? b('{ [ -f ', p, ' ] || [ -d ', p, ' ]; } && [ ! -h ', p, ' ]')
        : b('{ [ -e ', p, ' ] || [ -h ', p, ' ]; }');
  const cmd = words.map((w) => (typeof w === 'string' ? Buffer.from(w) : w === path ? p : w));
  return b('if ', test, '; then ', ...cmd.flatMap((w, i) => [i ? ' ' : '', w]), '; fi\n');
}

/** A file capability (VFS_CAP_REVISION_2, 20 bytes): random permitted and inheritable sets. */
function capability(r: Random): Buffer {
  const b = Buffer.alloc(20);
  b.writeUInt32LE(0x02000000 | (r.chance(0.7) ? 1 : 0), 0);
  b.writeUInt32LE(r.int(2 ** 32) >>> 0, 4); // permitted, caps 0-31
  b.writeUInt32LE(r.chance(0.3) ? r.int(2 ** 32) >>> 0 : 0, 8); // inheritable
  b.writeUInt32LE(r.int(2 ** 9), 12); // permitted, caps 32-40
  b.writeUInt32LE(0, 16);
  return b;
}

function mtime(r: Random): string {
  const sec = r.chance(0.1) ? r.int(100) : 1_000_000_000 + r.int(3_000_000_000);
  const nsec = r.chance(0.2) ? 0 : r.int(1_000_000_000);
  return `@${sec}.${String(nsec).padStart(9, '0')}`;
}

/**
 * Builds random trees and changes to them. Call addTree/change for as many directories as a batch
 * holds, then finish() once: ownership, modes, xattrs and times are applied in the order that keeps
 * them (chown clears suid and capabilities; a directory's mtime moves while it is filled).
 */
export class TreeBuilder {
  private create: Buffer[] = [];
  private queued = new Set<string>();
  private sockets: Buffer[] = [];
  private owners: Array<[Buffer, number, number]> = [];
  private modes: Array<[Buffer, number]> = [];
  private attrs: Buffer[] = [];
  private times: Buffer[] = [];
  private dirTimes: Array<[number, Buffer]> = [];

  /** A new random tree at `dir` (created), of about `size` entries. */
  addTree(dir: Buffer, r: Random, size = 8 + r.int(16)): void {
    mkdirSync(dir);
    this.meta(dir, 'dir', r, 0);
    const dirs: Array<[Buffer, number]> = [[dir, 0]];
    const files: Buffer[] = [];
    for (let i = 0; i < size; i++) this.addEntry(dirs, files, r);
  }

  /** Random changes to the tree at `dir`: deletions, rewrites, new entries, type changes, metadata. */
  change(dir: Buffer, r: Random, count = 2 + r.int(8)): void {
    for (let i = 0; i < count; i++) {
      const all = listTree(dir);
      const dirs: Array<[Buffer, number]> = [
        [dir, 0],
        ...all.filter((e) => e.isDir).map((e) => [e.path, e.depth] as [Buffer, number]),
      ];
      const files = all.filter((e) => e.isFile).map((e) => e.path);
      const target = all.length ? r.pick(all) : undefined;
      const op = r.int(11);
      if (!target || op === 0) {
        this.addEntry(dirs, files, r);
      } else if (op === 1) {
        rmSync(target.path, { recursive: true, force: true });
      } else if (op === 2 && target.isFile) {
        writeFileSync(target.path, r.bytes(r.int(3000)));
        this.times.push(line(target.path, 'touch', '-h', '-d', mtime(r), target.path));
      } else if (op === 3 && !target.isSymlink) {
        chmodSync(target.path, r.int(0o10000));
      } else if (op === 4) {
        lchownSync(target.path, r.pick(IDS), r.pick(IDS));
      } else if (op === 5 && (target.isFile || target.isDir)) {
        const name = `user.${randomName(r).toString('hex').slice(0, 12)}`;
        const value = `0s${r.bytes(1 + r.int(40)).toString('base64')}`;
        this.attrs.push(line(target.path, 'setfattr', '-h', '-n', name, '-v', value, target.path));
      } else if (op === 6 && target.isFile) {
        // a file becomes a directory with something in it
        unlinkSync(target.path);
        mkdirSync(target.path);
        writeFileSync(join(target.path, Buffer.from('inside')), r.bytes(r.int(100)));
      } else if (op === 7 && target.isDir) {
        rmSync(target.path, { recursive: true });
        writeFileSync(target.path, r.bytes(r.int(100)));
      } else if (op === 8 && target.isSymlink) {
        unlinkSync(target.path);
        symlinkSync(randomName(r), target.path);
      } else if (op === 9) {
        this.times.push(line(target.path, 'touch', '-h', '-d', mtime(r), target.path));
      } else if (op === 10 && files.length) {
        // one more name for a file, or one less
        const f = r.pick(files);
        const name = join(r.pick(dirs)[0], randomName(r));
        if (!existsSync(name)) linkSync(f, name);
      }
    }
  }

  private addEntry(dirs: Array<[Buffer, number]>, files: Buffer[], r: Random): void {
    const [parent, depth] = r.pick(dirs);
    const path = join(parent, randomName(r));
    // Taken, now or by a special file queued for the shell.
    if (this.queued.has(path.toString('latin1')) || existsSync(path) || isSymlink(path)) return;
    const kind = r.pick([
      'file',
      'file',
      'file',
      'empty',
      'dir',
      'dir',
      'symlink',
      'hardlink',
      'fifo',
      'char',
      'block',
      'socket',
    ] as const);
    if (kind === 'dir' && depth < 4) {
      mkdirSync(path);
      dirs.push([path, depth + 1]);
      this.meta(path, 'dir', r, depth + 1);
    } else if (kind === 'file' || kind === 'empty' || (kind === 'dir' && depth >= 4)) {
      writeFileSync(
        path,
        kind === 'empty' ? Buffer.alloc(0) : r.bytes(r.chance(0.2) ? r.int(70_000) : r.int(600)),
      );
      files.push(path);
      this.meta(path, 'file', r, depth);
    } else if (kind === 'hardlink' && files.length) {
      linkSync(r.pick(files), path);
    } else if (kind === 'symlink') {
      const target = r.pick([
        () => Buffer.from('/etc/passwd'),
        () => Buffer.from('../'.repeat(r.int(5)) + 'elsewhere'),
        () => randomName(r),
        () => (files.length ? lastComponent(r.pick(files)) : randomName(r)),
        () => Buffer.concat([Buffer.from('t'), r.bytes(6).map((b) => (b === 0 ? 1 : b))]),
        () => Buffer.alloc(200 + r.int(300), 0x6c),
      ])();
      symlinkSync(target, path);
      this.meta(path, 'symlink', r, depth);
    } else if (kind === 'fifo') {
      this.create.push(line(path, 'mkfifo', path));
      this.queued.add(path.toString('latin1'));
      this.meta(path, 'special', r, depth);
    } else if (kind === 'char' || kind === 'block') {
      const major = r.pick([1, 4, 7, 8, 136, 259, 4095]);
      const minor = r.pick([0, 1, 3, 255, 256, 65535, 1048575]);
      this.create.push(line(path, 'mknod', path, kind === 'char' ? 'c' : 'b', String(major), String(minor)));
      this.queued.add(path.toString('latin1'));
      this.meta(path, 'special', r, depth);
    } else if (kind === 'socket') {
      this.sockets.push(path);
      this.queued.add(path.toString('latin1'));
    }
  }

  private meta(path: Buffer, kind: 'dir' | 'file' | 'symlink' | 'special', r: Random, depth: number): void {
    if (r.chance(0.6)) this.owners.push([path, r.pick(IDS), r.pick(IDS)]);
    if (kind !== 'symlink') {
      const special = r.chance(0.3) ? r.pick([0o4000, 0o2000, 0o1000, 0o6000, 0o7000]) : 0;
      this.modes.push([path, special | r.int(0o1000)]);
    }
    if (kind === 'file' || kind === 'dir') {
      for (let i = r.int(3); i > 0; i--) {
        const name = `user.${r.pick(['a', 'b', 'mime_type', 'checksum', 'x.y'])}${r.int(3)}`;
        const value = r.chance(0.5) ? Buffer.from(`value ${r.int(1e6)}`) : r.bytes(1 + r.int(64));
        this.attrs.push(
          line(path, 'setfattr', '-h', '-n', name, '-v', `0s${value.toString('base64')}`, path),
        );
      }
    }
    if (kind === 'file' && r.chance(0.2))
      this.attrs.push(
        line(
          path,
          'setfattr',
          '-n',
          'security.capability',
          '-v',
          `0s${capability(r).toString('base64')}`,
          path,
        ),
      );
    const touch = line(path, 'touch', '-h', '-d', mtime(r), path);
    if (kind === 'dir') this.dirTimes.push([depth, touch]);
    else this.times.push(touch);
  }

  /** Applies what is queued: special files, sockets, owners, modes, xattrs, then times. */
  async finish(): Promise<void> {
    if (this.create.length) await check('sh', ['-e'], { input: Buffer.concat(this.create) });
    // A later change may have removed the directory a socket was queued for.
    for (const s of this.sockets)
      if (isDirectory(s.subarray(0, s.lastIndexOf(0x2f))) && !existsSync(s) && !isSymlink(s))
        await socketAt(s);
    for (const [p, uid, gid] of this.owners) if (existsSync(p)) lchownSync(p, uid, gid);
    for (const [p, mode] of this.modes)
      if (existsSync(p) && !lstatSync(p).isSymbolicLink()) chmodSync(p, mode);
    // Directory times last: creating or removing an entry moves its directory's mtime.
    const dirTimes = this.dirTimes.sort((a, b) => b[0] - a[0]).map((d) => d[1]);
    const script = Buffer.concat([...this.attrs, ...this.times, ...dirTimes]);
    if (script.length) await check('sh', ['-e'], { input: script });
    this.create = [];
    this.queued.clear();
    this.sockets = [];
    this.owners = [];
    this.modes = [];
    this.attrs = [];
    this.times = [];
    this.dirTimes = [];
  }
}

interface Listed {
  path: Buffer;
  depth: number;
  isDir: boolean;
  isFile: boolean;
  isSymlink: boolean;
}

/** Every entry below `dir` (not `dir` itself), sockets left out. */
function listTree(dir: Buffer, depth = 1): Listed[] {
  const out: Listed[] = [];
  for (const name of readdirSync(dir, { encoding: 'buffer' })) {
    const path = join(dir, name);
    const st = lstatSync(path);
    if (st.isSocket()) continue;
    out.push({ path, depth, isDir: st.isDirectory(), isFile: st.isFile(), isSymlink: st.isSymbolicLink() });
    if (st.isDirectory()) out.push(...listTree(path, depth + 1));
  }
  return out;
}

/**
 * Leaves a socket inode at `path` (any bytes, any length): bound at a short temporary path (bind()
 * paths are limited to 107 bytes), renamed into place while open, then closed.
 */
async function socketAt(path: Buffer): Promise<void> {
  const tmp = `${await tmpDir('sock')}/s`;
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(tmp, () => resolve());
  });
  try {
    renameSync(tmp, path);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
}

function lastComponent(p: Buffer): Buffer {
  return p.subarray(p.lastIndexOf(0x2f) + 1);
}

function isSymlink(p: Buffer): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

function isDirectory(p: Buffer): boolean {
  try {
    return lstatSync(p).isDirectory();
  } catch {
    return false;
  }
}
