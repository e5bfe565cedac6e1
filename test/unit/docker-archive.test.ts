import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { dockerArchive, type LoadableImage } from '../../src/image/docker-archive.js';
import type { ImageSource } from '../../src/content/storage.js';
import { check, tmpDir } from '../helpers/tools.js';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';

const sha = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex');

function image(blobs: Record<string, Buffer>, layer: Buffer, config: Buffer): [ImageSource, LoadableImage] {
  const source: ImageSource = {
    name: 'mem',
    manifest: async () => null,
    openBlob: async (digest) => Readable.from([blobs[digest]]),
  };
  const d = (b: Buffer) => ({
    mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
    digest: sha(b),
    size: b.length,
  });
  return [
    source,
    {
      digest: 'sha256:' + '0'.repeat(64),
      manifest: Buffer.from('{}'),
      config: d(config),
      layers: [d(layer)],
    },
  ];
}

async function collect(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('the docker save archive', () => {
  it('holds manifest.json naming the tag, the config and the layers, as tar reads it', async () => {
    const layer = Buffer.from('layer bytes');
    const config = Buffer.from('{"rootfs":{}}');
    const [source, img] = image({ [sha(layer)]: layer, [sha(config)]: config }, layer, config);
    const tar = await collect(dockerArchive(source, img, 'reg:5000/a/b:v1'));
    const file = path.join(await tmpDir('archive'), 'a.tar');
    await writeFile(file, tar);
    const listing = (await check('tar', ['-tf', file])).stdout.trim().split('\n');
    expect(listing).toEqual([
      'blobs/',
      'blobs/sha256/',
      'manifest.json',
      `blobs/sha256/${sha(config).slice(7)}`,
      `blobs/sha256/${sha(layer).slice(7)}`,
    ]);
    const manifest = JSON.parse((await check('tar', ['-xOf', file, 'manifest.json'])).stdout);
    expect(manifest).toEqual([
      {
        Config: `blobs/sha256/${sha(config).slice(7)}`,
        RepoTags: ['reg:5000/a/b:v1'],
        Layers: [`blobs/sha256/${sha(layer).slice(7)}`],
      },
    ]);
  });

  it('ends with an error, not a complete archive, when a blob does not match its digest', async () => {
    const layer = Buffer.from('layer bytes');
    const config = Buffer.from('{}');
    const [source, img] = image(
      { [sha(layer)]: Buffer.from('other bytes'), [sha(config)]: config },
      layer,
      config,
    );
    await expect(collect(dockerArchive(source, img, null))).rejects.toThrow(
      /does not match its digest or size/,
    );
  });

  it('ends with the error of a blob stream that fails mid-way (a dropped connection), not a crash', async () => {
    const layer = Buffer.alloc(4096, 1);
    const config = Buffer.from('{}');
    const [, img] = image({}, layer, config);
    const source: ImageSource = {
      name: 'mem',
      manifest: async () => null,
      openBlob: async (digest) =>
        digest === sha(config)
          ? Readable.from([config])
          : new Readable({
              read() {
                this.push(layer.subarray(0, 1024));
                this.destroy(new Error('connection reset'));
              },
            }),
    };
    await expect(collect(dockerArchive(source, img, null))).rejects.toThrow(/connection reset/);
  });
});
