// Mutates a tree in a loop until killed, the way a busy sandbox does while it is captured: files are
// deleted, truncated, grown, rewritten, replaced by a directory (with a child) or a symlink and back,
// and new files come and go. Only `<root>/hot` is touched. File contents are letters only, never a
// zero byte, so zeros in a captured file can only be padding written by the capture.
//
//   node mutator.mjs ROOT SLOTS SEED
//
// Prints "ready" once the first round is done, then one line per 100 operations ("ops N").
import {
  appendFileSync,
  lstatSync,
  mkdirSync,
  rmSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';

const [root, slotsArg, seedArg] = process.argv.slice(2);
const hot = path.join(root, 'hot');
const slots = Number(slotsArg);
let seed = Number(seedArg) >>> 0;

/** mulberry32 */
function random() {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (n) => Math.floor(random() * n);

function letters(size) {
  const b = Buffer.allocUnsafe(size);
  const base = 0x61 + pick(26);
  for (let i = 0; i < size; i++) b[i] = base + (i % 7);
  return b;
}

const slot = (i) => path.join(hot, `s${String(i).padStart(3, '0')}`);
const size = () => (random() < 0.3 ? pick(4096) : pick(1024 * 1024));

const ops = [
  (p) => rmSync(p, { recursive: true, force: true }), // delete
  (p) => {
    // shrink only: truncate() to a larger size would append zeros
    const to = pick(64 * 1024);
    if (lstatSync(p).isFile() && lstatSync(p).size > to) truncateSync(p, to);
  },
  (p) => appendFileSync(p, letters(pick(256 * 1024))), // grow
  (p) => writeFileSync(p, letters(size())), // rewrite (or recreate)
  (p) => {
    // a file becomes a directory with a child, or a directory a file again
    rmSync(p, { recursive: true, force: true });
    mkdirSync(p);
    writeFileSync(path.join(p, 'child'), letters(size()));
  },
  (p) => {
    rmSync(p, { recursive: true, force: true });
    symlinkSync('elsewhere', p);
  },
  (p) => {
    rmSync(p, { recursive: true, force: true });
    writeFileSync(p, letters(size()));
  },
  () => writeFileSync(path.join(hot, `new-${pick(50)}`), letters(pick(8192))), // new files come
  () => rmSync(path.join(hot, `new-${pick(50)}`), { force: true }), // and go
];

let count = 0;
let ready = false;
for (;;) {
  const i = pick(slots);
  try {
    ops[pick(ops.length)](slot(i));
  } catch {
    // the slot was of another kind than the operation needs: the next one will do
  }
  count++;
  if (!ready && count >= slots) {
    ready = true;
    process.stdout.write('ready\n');
  }
  if (count % 100 === 0) {
    process.stdout.write(`ops ${count}\n`);
    // Let the event loop breathe (stdout), and give the capture some CPU on a 2-core machine.
    await new Promise((r) => setTimeout(r, 1));
  }
}
