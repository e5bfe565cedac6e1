/** Runs at most `n` of the given async jobs at once (a minimal p-limit). */
export function limiter(n: number): <T>(job: () => Promise<T>) => Promise<T> {
  let active = 0;
  // A queue read from `head`: Array#shift copies the array, which is quadratic over a long queue.
  let queue: Array<(() => void) | null> = [];
  let head = 0;
  const next = () => {
    if (active >= n || head >= queue.length) return;
    const start = queue[head]!;
    // Let go of it now: a started job's closure holds what the job works on (a 1 MiB block, say).
    queue[head++] = null;
    if (head > 1024 && head * 2 > queue.length) {
      queue = queue.slice(head);
      head = 0;
    }
    active++;
    start();
  };
  return <T>(job: () => Promise<T>) =>
    new Promise<T>((resolve, reject) => {
      queue.push(() => {
        job()
          .then(resolve, reject)
          .finally(() => {
            active--;
            next();
          });
      });
      next();
    });
}

/** A job that did not start because an earlier one failed. */
const CANCELLED = new Error('cancelled after another job failed');

/**
 * Runs `job(i)` for every item, `concurrency` at a time, heaviest first, and returns the results in
 * item order. Heaviest first (the longest-processing-time rule): the last jobs to start are the small
 * ones, so every worker stays busy to the end instead of one big job running alone. After a failure no
 * new job starts, and the ones under way finish before the first error is thrown, so nothing still
 * writes into what the caller then cleans up.
 */
export async function allHeaviestFirst<T>(
  weights: number[],
  concurrency: number,
  job: (i: number) => Promise<T>,
): Promise<T[]> {
  const parallel = limiter(concurrency);
  let failed = false;
  const order = weights.map((_, i) => i).sort((a, b) => weights[b] - weights[a] || a - b);
  const started = new Map(
    order.map((i) => [
      i,
      parallel(async () => {
        if (failed) throw CANCELLED;
        try {
          return await job(i);
        } catch (err) {
          failed = true;
          throw err;
        }
      }),
    ]),
  );
  const outcomes = await Promise.allSettled(weights.map((_, i) => started.get(i)!));
  const failure = outcomes.find(
    (o): o is PromiseRejectedResult => o.status === 'rejected' && o.reason !== CANCELLED,
  );
  if (failure) throw failure.reason;
  return outcomes.map((o) => (o as PromiseFulfilledResult<T>).value);
}
