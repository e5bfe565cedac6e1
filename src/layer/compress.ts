import zlib from 'node:zlib';
import { PassThrough, type Transform } from 'node:stream';
import { MediaType } from '../image/oci.js';

export type Compression = 'gzip' | 'zstd' | 'none';

export const LEVELS: Record<Compression, { min: number; max: number; default: number }> = {
  // gzip level 1: compression bounds a full capture. Measured on a 1.7 GB rootfs (bench/RESULTS.md):
  // level 6 took 1.27x as long for layers only 7 % smaller; every later pull reads either quickly.
  gzip: { min: 1, max: 9, default: 1 },
  zstd: { min: 1, max: 19, default: 3 },
  none: { min: 0, max: 0, default: 0 },
};

export const LAYER_MEDIA_TYPE: Record<Compression, string> = {
  gzip: MediaType.layerGzip,
  zstd: MediaType.layerZstd,
  none: MediaType.layerTar,
};

/** Zstandard needs Node's zlib with zstd (Node 22.15+/24): the action's own runtime has it. */
export function zstdAvailable(): boolean {
  return typeof (zlib as { createZstdCompress?: unknown }).createZstdCompress === 'function';
}

/** A compressing stream; zlib streams run on the libuv pool, so two layers use both cores. */
export function compressor(kind: Compression, level: number): Transform {
  // 1 MiB in and out per call: against 256 KiB, zstd-3 took 12 % less time and gzip-1 5 % less on a
  // 0.7 GB tar (Node 24); the per-call overhead of the pool hop is what shrinks.
  const chunkSize = 1024 * 1024;
  switch (kind) {
    case 'gzip':
      return zlib.createGzip({ level, chunkSize });
    case 'zstd': {
      const z = zlib as unknown as {
        createZstdCompress(o: object): Transform;
        constants: Record<string, number>;
      };
      if (!zstdAvailable())
        throw new Error('zstd compression needs Node.js 22.15 or newer (the action runs on node24)');
      return z.createZstdCompress({ chunkSize, params: { [z.constants.ZSTD_c_compressionLevel]: level } });
    }
    case 'none':
      return new PassThrough({ highWaterMark: chunkSize });
  }
}
