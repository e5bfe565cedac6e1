#!/usr/bin/env node
// Writes the synthetic trees of the P4 (memory) and SCALE figures (bench/shared/synth-trees.mjs); see bench/README.md.
//
//   node bench/synth-tree.mjs small DIR --entries N [--big-files K] [--seed S]
//       DIR/srv/small/gNNN-…/dNN-…/fNNNN-…: N entries below DIR in all, counting the K + 1 entries of
//       DIR/srv/big that `big` adds later (not written here). About 1000 files per leaf directory,
//       10 leaf directories per group; file sizes log-uniform over 0..2048 bytes (mean ≈ 268 B);
//       names of random length (paths of about 60 bytes on average, like a rootfs's).
//   node bench/synth-tree.mjs big DIR --files K --bytes B [--seed S]
//       DIR/blob-0 … blob-(K-1), B bytes in all, written (never sparse) as repeats of one 64 MiB block.
//
// All contents are slices of one 64 MiB pseudo-random block (AES-CTR of zeros, so runs are
// reproducible): incompressible, so gzip does full work on every byte. Prints a JSON line
// { entries, files, dirs, bytes } on stdout (entries and bytes of what it wrote).

import { createCipheriv, createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';

const BLOCK = 64 * 1024 * 1024;
const FILES_PER_LEAF = 1000;
const LEAVES_PER_GROUP = 10;
const MAX_SMALL = 2048;
const NAME_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789_-.';

function args(argv) {
  const [mode, dir, ...rest] = argv;
  const o = { mode, dir, seed: 1, bigFiles: 8 };
  for (let i = 0; i < rest.length; i += 2) {
    const k = rest[i].replace(/^--/, '');
    const v = Number(rest[i + 1]);
    if (!Number.isFinite(v)) throw new Error(`--${k} needs a number`);
    if (k === 'entries') o.entries = v;
    else if (k === 'big-files' || k === 'files') o.bigFiles = v;
    else if (k === 'bytes') o.bytes = v;
    else if (k === 'seed') o.seed = v;
    else throw new Error(`unknown option --${k}`);
  }
  if (!dir || !['small', 'big'].includes(mode))
    throw new Error('usage: synth-tree.mjs small DIR --entries N | big DIR --files K --bytes B');
  return o;
}

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomBlock(seed) {
  const key = createHash('sha256').update(`bench-block-${seed}`).digest();
  const c = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
  return Buffer.concat([c.update(Buffer.alloc(BLOCK)), c.final()]);
}

function name(rand, prefix, min, max) {
  const n = min + Math.floor(rand() * (max - min + 1));
  let s = prefix;
  for (let i = 0; i < n; i++) s += NAME_CHARS[Math.floor(rand() * NAME_CHARS.length)];
  return s;
}

function small({ dir, entries, bigFiles, seed }) {
  const rand = prng(seed);
  const block = randomBlock(seed);
  const reserved = 2 + 1 + bigFiles; // srv, srv/small; srv/big and its files (written by `big`)
  const leaves = Math.max(1, Math.round(entries / FILES_PER_LEAF));
  const groups = Math.ceil(leaves / LEAVES_PER_GROUP);
  const files = entries - reserved - leaves - groups;
  if (files < leaves) throw new Error(`--entries ${entries} is too small`);
  const base = path.join(dir, 'srv', 'small');
  mkdirSync(base, { recursive: true });
  let bytes = 0;
  let written = 0;
  let groupDir = '';
  for (let l = 0; l < leaves; l++) {
    if (l % LEAVES_PER_GROUP === 0) {
      groupDir = path.join(base, name(rand, `g${String(l / LEAVES_PER_GROUP).padStart(3, '0')}-`, 4, 20));
      mkdirSync(groupDir);
    }
    const leaf = path.join(groupDir, name(rand, `d${String(l % LEAVES_PER_GROUP).padStart(2, '0')}-`, 4, 20));
    mkdirSync(leaf);
    const n = Math.floor(files / leaves) + (l < files % leaves ? 1 : 0);
    for (let f = 0; f < n; f++) {
      const size = Math.floor((MAX_SMALL + 1) ** rand()) - 1; // log-uniform over 0..MAX_SMALL
      const off = Math.floor(rand() * (BLOCK - size));
      writeFileSync(
        path.join(leaf, name(rand, `f${String(f).padStart(4, '0')}-`, 6, 30)),
        block.subarray(off, off + size),
      );
      bytes += size;
      written++;
    }
    if ((l + 1) % 100 === 0) process.stderr.write(`synth-tree: ${written} files\n`);
  }
  return { entries: entries - 1 - bigFiles, files: written, dirs: 2 + leaves + groups, bytes };
}

function big({ dir, bigFiles, bytes, seed }) {
  if (!(bytes >= 0)) throw new Error('big needs --bytes');
  const block = randomBlock(seed + 1000);
  mkdirSync(dir, { recursive: true });
  const each = Math.floor(bytes / bigFiles);
  for (let i = 0; i < bigFiles; i++) {
    let left = i === bigFiles - 1 ? bytes - each * (bigFiles - 1) : each;
    const fd = openSync(path.join(dir, `blob-${i}`), 'w');
    // start each file at another offset, so no two files share a 64 MiB-aligned stream
    let off = Math.floor((i * BLOCK) / bigFiles);
    while (left > 0) {
      const n = Math.min(left, BLOCK - off);
      writeSync(fd, block, off, n);
      left -= n;
      off = 0;
    }
    closeSync(fd);
  }
  return { entries: 1 + bigFiles, files: bigFiles, dirs: 1, bytes };
}

const o = args(process.argv.slice(2));
const stats = o.mode === 'small' ? small(o) : big(o);
console.log(JSON.stringify(stats));
