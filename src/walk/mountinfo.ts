import { readFile } from 'node:fs/promises';

/** Filesystem types whose contents are made up by the kernel or live in memory: never part of an image. */
export const VIRTUAL_FS_TYPES = new Set([
  'proc',
  'sysfs',
  'devtmpfs',
  'devpts',
  'tmpfs',
  'cgroup',
  'cgroup2',
  'mqueue',
  'debugfs',
  'tracefs',
  'securityfs',
  'bpf',
  'pstore',
  'configfs',
  'fusectl',
  'hugetlbfs',
  'binfmt_misc',
  'autofs',
  'nsfs',
  'efivarfs',
  'ramfs',
  'rpc_pipefs',
]);

export interface Mount {
  /** Absolute mount point, escapes decoded (bytes, since a mount point may be any bytes). */
  mountPoint: Buffer;
  fsType: string;
  /** Per-superblock options, e.g. `lowerdir=…,upperdir=…` for overlay. */
  superOptions: string;
}

/**
 * Parses /proc/self/mountinfo (proc(5)): field 5 is the mount point, the fields after the lone `-` are
 * the filesystem type, the source and the super options. Mount points escape space, tab, newline and
 * backslash as `\040`, `\011`, `\012`, `\134`.
 */
export function parseMountInfo(text: Buffer): Mount[] {
  const mounts: Mount[] = [];
  for (const line of text.toString('latin1').split('\n')) {
    if (!line) continue;
    const fields = line.split(' ');
    const dash = fields.indexOf('-', 6);
    if (fields.length < 7 || dash < 0) continue;
    mounts.push({
      mountPoint: Buffer.from(decodeOctalEscapes(fields[4]), 'latin1'),
      fsType: fields[dash + 1] ?? '',
      superOptions: decodeOctalEscapes(fields[dash + 3] ?? ''),
    });
  }
  return mounts;
}

function decodeOctalEscapes(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export async function readMounts(path = '/proc/self/mountinfo'): Promise<Mount[]> {
  try {
    return parseMountInfo(await readFile(path));
  } catch {
    return []; // not Linux, or /proc not mounted: nothing to leave out on that account
  }
}

/** Swap files listed in /proc/swaps (swap partitions are devices, not files in the tree). */
export async function readSwapFiles(path = '/proc/swaps'): Promise<Buffer[]> {
  try {
    const lines = (await readFile(path)).toString('latin1').split('\n').slice(1);
    return lines
      .map((l) => l.split(/\s+/))
      .filter((f) => f[1] === 'file')
      .map((f) => Buffer.from(decodeOctalEscapes(f[0]), 'latin1'));
  } catch {
    return [];
  }
}
