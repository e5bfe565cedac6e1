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
