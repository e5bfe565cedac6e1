// Checking images with tools nobody here wrote: skopeo (registry copies, inspect) and umoci (unpack).
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { debianMirror } from './debian-mirror.mjs';
import { check, tmpDir } from './tools.js';

/** `umoci unpack` of LAYOUT:TAG; returns the unpacked root filesystem. */
export async function unpack(layout: string, tag = 'latest'): Promise<string> {
  const bundle = path.join(await tmpDir('bundle'), 'b');
  await check('umoci', ['unpack', '--image', `${layout}:${tag}`, bundle]);
  return path.join(bundle, 'rootfs');
}

export interface Creds {
  user: string;
  pass: string;
}

/** skopeo copy of a registry image into a new OCI layout (zstd layers recompressed to gzip for umoci). */
export async function pull(ref: string, opts: { creds?: Creds; gzip?: boolean } = {}): Promise<string> {
  const layout = path.join(await tmpDir('pulled'), 'layout');
  const args = ['copy', '--src-tls-verify=false'];
  args.push(...(opts.creds ? ['--src-creds', `${opts.creds.user}:${opts.creds.pass}`] : ['--src-no-creds']));
  if (opts.gzip) args.push('--dest-compress-format', 'gzip', '--dest-compress');
  await check('skopeo', [...args, `docker://${ref}`, `oci:${layout}:latest`]);
  return layout;
}

/** skopeo copy of an OCI layout into a registry. */
export async function pushLayout(layout: string, tag: string, ref: string): Promise<void> {
  await check('skopeo', [
    'copy',
    '--dest-tls-verify=false',
    '--dest-no-creds',
    `oci:${layout}:${tag}`,
    `docker://${ref}`,
  ]);
}

/** `skopeo inspect` (the image's digest, tags, layers). */
export async function inspect(
  ref: string,
  creds?: Creds,
): Promise<{ Digest: string; Layers: string[]; Created: string }> {
  const args = [
    'inspect',
    '--tls-verify=false',
    ...(creds ? ['--creds', `${creds.user}:${creds.pass}`] : ['--no-creds']),
  ];
  const r = await check('skopeo', [...args, `docker://${ref}`]);
  return JSON.parse(r.stdout);
}

/**
 * A Debian bookworm minbase rootfs, built once by debootstrap (from the mirror apt uses here) and kept
 * for later runs.
 */
export async function debianRootfs(): Promise<string> {
  const dir = process.env.SNAPSHOT_TEST_ROOTFS ?? '/var/cache/snapshot-action-tests/bookworm-minbase';
  if (existsSync(path.join(dir, '.complete'))) return dir;
  await mkdir(path.dirname(dir), { recursive: true });
  await check('rm', ['-rf', dir]);
  await check('debootstrap', ['--variant=minbase', 'bookworm', dir, debianMirror()]);
  await check('touch', [path.join(dir, '.complete')]);
  return dir;
}
