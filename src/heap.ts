import { PerformanceObserver } from 'node:perf_hooks';
import v8 from 'node:v8';

// Imported first by each entry point, before anything allocates much.
//
// V8 sizes the young generation from the machine's memory: Node 24 on a 24 GiB runner grows it to
// 64 MiB semi-spaces, 134 MB of new space, where Node 20 stopped at 33 MB. A capture makes garbage
// at a steady rate (a Buffer per path, a header per entry), so it grows all the way and stays: on
// 1M entries, peak RSS 446 MB against 335 MB with the young generation kept at its starting size.
// Kept at that size (1 MiB), though, a capture of 200k small files spent a third of its main thread
// in the collector: ~900 scavenges, and ~95 full collections of an old space filled by what they
// promoted too early. Grown to 16 MiB (measured: 8 MiB semi-spaces) it took 8.6 CPU-seconds instead
// of 9.8-11, for 8 MB more RSS; to 32 MiB, 8.4 s for 45 MB more. So it may grow until it reaches
// YOUNG_GENERATION, then stays. Node 24's V8 reads the growth factor each time it would grow the
// young generation, so setting it here, after start-up, takes effect (its maximum size is fixed at
// start-up); Node 20 keeps its own 33 MB limit either way.
const YOUNG_GENERATION = 16 * 1024 * 1024;

function youngGenerationSize(): number {
  return v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? Infinity;
}

v8.setFlagsFromString('--semi-space-growth-factor=2');
// Checked after each collection, which is when V8 grows it: at most one step past the limit.
const observer = new PerformanceObserver(() => {
  if (youngGenerationSize() < YOUNG_GENERATION) return;
  v8.setFlagsFromString('--semi-space-growth-factor=1');
  observer.disconnect();
});
observer.observe({ entryTypes: ['gc'] });
