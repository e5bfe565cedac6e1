// Preloaded (`node --import ./bench/memwatch.mjs`) into our CLI by the P4 and SCALE figures
// (bench/shared/synth-run.mjs): samples process.memoryUsage() every 50 ms while the event loop is free and, at exit,
// writes to $BENCH_MEMWATCH_FILE the sample with the highest RSS and the maximum of each field.
// The peak RSS of record is GNU time's; this only tells what it is made of (JS heap or buffers).
import { writeFileSync } from 'node:fs';

const out = process.env.BENCH_MEMWATCH_FILE;
if (out) {
  let atPeak = null;
  const max = {};
  const sample = () => {
    const m = process.memoryUsage();
    if (!atPeak || m.rss > atPeak.rss) atPeak = { ...m, at: process.uptime() };
    for (const [k, v] of Object.entries(m)) max[k] = Math.max(max[k] ?? 0, v);
  };
  setInterval(sample, 50).unref();
  process.on('exit', () => {
    sample();
    try {
      writeFileSync(out, JSON.stringify({ atPeak, max }));
    } catch {
      // the bench reports the breakdown as missing
    }
  });
}
