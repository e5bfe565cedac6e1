// A tree that changes while it is captured. First each kind of change between the walk and the read,
// made deterministically (the walk and the layer writer called in-process); then the bundled action
// capturing a tree that a child process mutates in a loop. Every capture must succeed with a layer
// whose tar headers agree with their data (umoci unpacks it, tar-stream reads it), and warn about
// each path it found unstable: a file captured as-read, per file, never a broken archive.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { appendFile, mkdir, readFile, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import zlib from 'node:zlib';
import { extract } from 'tar-stream';
import { runAction } from '../helpers/action.js';
import { unpack } from '../helpers/image.js';
import { check, cleanupAll, onCleanup, tmpDir } from '../helpers/tools.js';
import { scanRoot } from '../../src/walk/scan.js';
import { writeLayer } from '../../src/layer/write.js';
import type { BlobSink } from '../../src/content/blob.js';
import type { Logger } from '../../src/log.js';

interface TarEntry {
  name: string;
  type: string;
  size: number;
  data: Buffer;
}

/** Reads a whole tar: tar-stream fails on a header that disagrees with the bytes after it. */
async function readTar(tar: Buffer): Promise<TarEntry[]> {
  const ex = extract();
  const out: TarEntry[] = [];
  const done = (async () => {
    for await (const entry of ex) {
      const chunks: Buffer[] = [];
      for await (const c of entry) chunks.push(c as Buffer);
      const data = Buffer.concat(chunks);
      const h = entry.header;
      expect(data.length, h.name).toBe(h.size ?? 0);
      out.push({ name: h.name.replace(/\/$/, ''), type: h.type ?? 'file', size: h.size ?? 0, data });
    }
  })();
  ex.end(tar);
  await done;
  return out;
}

/** Every layer of the layout's one image, uncompressed and read. */
async function layoutEntries(layout: string): Promise<TarEntry[]> {
  const blob = async (digest: string) => readFile(path.join(layout, 'blobs', 'sha256', digest.slice(7)));
  const index = JSON.parse((await readFile(path.join(layout, 'index.json'))).toString());
  const manifest = JSON.parse((await blob(index.manifests[0].digest)).toString());
  const entries: TarEntry[] = [];
  for (const layer of manifest.layers as Array<{ digest: string; mediaType: string }>) {
    const bytes = await blob(layer.digest);
    entries.push(...(await readTar(layer.mediaType.endsWith('+gzip') ? zlib.gunzipSync(bytes) : bytes)));
  }
  return entries;
}

function collectingLog(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  return { warnings, info() {}, debug() {}, warn: (m) => warnings.push(m) };
}

/** A sink that keeps the layer in memory. */
function memorySink(): BlobSink & { bytes(): Buffer } {
  const chunks: Buffer[] = [];
  return {
    bytes: () => Buffer.concat(chunks),
    create: async () => ({
      stream: new Writable({
        write: (c: Buffer, _e, done) => {
          chunks.push(c);
          done();
        },
      }),
      commit: async () => {},
      abort: async () => {},
    }),
  };
}

const letters = (n: number, c = 'q') => Buffer.alloc(n, c);

afterAll(cleanupAll);

describe('a change between the walk and the read', () => {
  it('pads a shrunk file, cuts a grown one, drops a vanished or replaced one, each with a warning', async () => {
    const root = await tmpDir('between');
    const files: Record<string, Buffer> = {
      shrinks: letters(300 * 1024),
      grows: letters(200 * 1024),
      'small-shrinks': letters(1000),
      'small-grows': letters(1000),
      'small-empty-grows': letters(0),
      vanishes: letters(5000),
      'becomes-dir': letters(100),
      'becomes-link': letters(100),
      'becomes-fifo': letters(100),
      'becomes-socket': letters(100),
      'dir/becomes-file/child': letters(100),
      stable: letters(4096, 's'),
    };
    for (const [rel, data] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(root, rel)), { recursive: true });
      await writeFile(path.join(root, rel), data);
    }
    const log = collectingLog();
    const scan = await scanRoot({ root, exclude: [], include: [], ownPaths: [], rewritten: [], log });
    expect(log.warnings).toEqual([]);

    const p = (rel: string) => path.join(root, rel);
    await truncate(p('shrinks'), 100 * 1024);
    await truncate(p('small-shrinks'), 10);
    await appendFile(p('grows'), letters(50 * 1024, 'g'));
    await appendFile(p('small-grows'), letters(10, 'g'));
    await appendFile(p('small-empty-grows'), letters(1, 'g'));
    await rm(p('vanishes'));
    await rm(p('becomes-dir'));
    await mkdir(p('becomes-dir'));
    await rm(p('becomes-link'));
    await symlink('stable', p('becomes-link'));
    await rm(p('becomes-fifo'));
    await check('mkfifo', [p('becomes-fifo')]);
    await rm(p('becomes-socket'));
    const server = createServer().listen(p('becomes-socket'));
    await new Promise((resolve) => server.once('listening', resolve));
    onCleanup(() => new Promise<void>((resolve) => server.close(() => resolve())));
    await rm(p('dir/becomes-file'), { recursive: true });
    await writeFile(p('dir/becomes-file'), 'now a file');

    const sink = memorySink();
    const indices = Array.from({ length: scan.entries.length }, (_, i) => i);
    const r = await writeLayer(
      { root, entries: scan.entries, indices, compression: 'none', level: 0, log },
      sink,
    );
    const tar = sink.bytes();
    expect(r.uncompressedSize).toBe(tar.length);
    const entries = new Map((await readTar(tar)).map((e) => [e.name, e]));

    // Shrunk: the size the header promised, the bytes still there, then zeros.
    const shrunk = entries.get('shrinks')!;
    expect(shrunk.size).toBe(300 * 1024);
    expect(shrunk.data.subarray(0, 100 * 1024).equals(letters(100 * 1024))).toBe(true);
    expect(shrunk.data.subarray(100 * 1024).equals(Buffer.alloc(200 * 1024))).toBe(true);
    expect(entries.get('small-shrinks')!.data).toEqual(Buffer.concat([letters(10), Buffer.alloc(990)]));
    // Grown: cut at the size the header promised.
    expect(entries.get('grows')!.data).toEqual(letters(200 * 1024));
    expect(entries.get('small-grows')!.data).toEqual(letters(1000));
    expect(entries.get('small-empty-grows')!.data).toEqual(letters(0));
    // Gone, or no longer a regular file (a directory, a symlink, a fifo, below a file): left out.
    const gones = ['vanishes', 'becomes-dir', 'becomes-link', 'becomes-fifo', 'becomes-socket'];
    for (const gone of [...gones, 'dir/becomes-file/child']) expect(entries.has(gone), gone).toBe(false);
    expect(entries.get('stable')!.data).toEqual(letters(4096, 's'));

    const warned = (rel: string, what: RegExp) =>
      expect(
        log.warnings.filter((w) => w.includes(p(rel)) && what.test(w)),
        `${rel}: ${log.warnings.join('\n')}`,
      ).toHaveLength(1);
    warned('shrinks', /shrank while it was read/);
    warned('small-shrinks', /shrank while it was read/);
    warned('grows', /grew while it was read/);
    warned('small-grows', /grew while it was read/);
    warned('small-empty-grows', /grew while it was read/);
    for (const gone of [...gones, 'dir/becomes-file/child'])
      warned(gone, /vanished or stopped being a regular file before it was read; left out/);
    expect(log.warnings).toHaveLength(11);
  });
});

describe('a tree mutated while the action captures it', () => {
  const SLOTS = 40;
  let root: string;
  let stable: Map<string, string>;
  let stopMutator: () => Promise<void>;

  beforeAll(async () => {
    root = path.join(await tmpDir('changing'), 'root');
    stable = new Map();
    for (let i = 0; i < 20; i++) {
      const rel = `stable/d${i % 4}/f${i}`;
      const data = createHash('sha256')
        .update(String(i))
        .digest()
        .toString('hex')
        .repeat(50 * (i + 1));
      await mkdir(path.dirname(path.join(root, rel)), { recursive: true });
      await writeFile(path.join(root, rel), data);
      stable.set(rel, createHash('sha256').update(data).digest('hex'));
    }
    await mkdir(path.join(root, 'hot'), { recursive: true });
    for (let i = 0; i < SLOTS; i++)
      await writeFile(path.join(root, 'hot', `s${String(i).padStart(3, '0')}`), letters(64 * 1024 * (i % 5)));

    const mutator = spawn(
      process.execPath,
      [path.resolve('test/helpers/mutator.mjs'), root, String(SLOTS), '7'],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let ops = 0;
    const ready = new Promise<void>((resolve, reject) => {
      mutator.stdout!.on('data', (d: Buffer) => {
        for (const line of d.toString().split('\n')) {
          if (line === 'ready') resolve();
          if (line.startsWith('ops ')) ops = Number(line.slice(4));
        }
      });
      mutator.once('exit', (code) => reject(new Error(`the mutator exited (${code}) before it was ready`)));
    });
    stopMutator = async () => {
      if (mutator.exitCode !== null || mutator.signalCode !== null) return;
      const exited = new Promise((r) => mutator.once('exit', r));
      mutator.kill('SIGKILL');
      await exited;
      console.log(`the mutator made ${ops} changes`);
    };
    onCleanup(stopMutator);
    await ready;
  });

  it('captures every time, with headers that agree with the data and a warning per unstable path', async () => {
    const runs: Array<Record<string, string>> = [
      { changes: 'full', compression: 'none' },
      { compression: 'gzip' },
      { changes: 'full', compression: 'gzip', concurrency: '1' },
    ];
    let warningsSeen = 0;
    const kinds = new Map<string, number>();
    let shrunkSeen = 0;
    for (let i = 0; i < 8; i++) {
      const output = path.join(await tmpDir('layout'), 'layout');
      const r = await runAction({
        root,
        'dry-run': 'true',
        output,
        'layer-size': '1MiB',
        ...runs[i % runs.length],
      });
      const where = `run ${i}: ${r.stdout.slice(-3000)}${r.stderr.slice(-2000)}`;
      expect(r.errors, where).toEqual([]);
      expect(r.code, where).toBe(0);
      const warnings = r.stdout.split('\n').filter((l) => l.startsWith('::warning'));
      warningsSeen += warnings.length;
      for (const w of warnings) {
        const kind = / (shrank|grew|vanished|changed) .*/.exec(w)?.[0].replace(/\(.*?\)|\d+/g, '') ?? w;
        kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
      }
      // Only the paths that moved are warned about, each by name.
      for (const w of warnings) expect(w, where).toContain(`${root}/hot/`);

      // umoci (Go's archive/tar) accepts it, and so does tar-stream, header by header.
      await unpack(output);
      const entries = await layoutEntries(output);
      const byName = new Map(entries.map((e) => [e.name, e]));
      for (const [rel, sha] of stable) {
        const e = byName.get(rel);
        expect(e?.type, rel).toBe('file');
        expect(createHash('sha256').update(e!.data).digest('hex'), rel).toBe(sha);
      }
      // The mutator never writes a zero byte: zeros are padding for a file that shrank, and a file
      // padded must have been named in a warning.
      for (const e of entries) {
        if (!e.name.startsWith('hot/') || e.type !== 'file' || !e.data.includes(0)) continue;
        shrunkSeen++;
        expect(
          warnings.some((w) => w.includes(`${root}/${e.name} shrank while it was read`)),
          `${e.name} holds padding but no warning names it\n${warnings.join('\n')}`,
        ).toBe(true);
      }
    }
    await stopMutator();
    console.log(`${warningsSeen} warnings, ${shrunkSeen} files padded, over 8 captures:`, kinds);
    // The mutator was fast enough to be noticed: the checks above were not vacuous.
    expect(warningsSeen).toBeGreaterThan(0);
  });
});
