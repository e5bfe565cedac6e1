import './heap.js';
import { stopCleanlyOnSignals } from './interrupt.js';
import { reportFailure } from './failure.js';

// First, before the bulk of the action is loaded (which takes a few hundred milliseconds): a job
// cancelled while it starts still ends with one line saying so, not a silent death by SIGTERM.
stopCleanlyOnSignals();
// Reads, zlib and hashing share libuv's pool (4 threads by default); it starts on first use, so this
// must be set before any of them. Twice the cores keeps both busy while reads wait on the disk.
process.env.UV_THREADPOOL_SIZE ??= '16';
// A reader that stops early (`| head`, `grep -q`) must not turn a finished snapshot into a crash.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
});
import('./main.js').then(
  ({ run }) => run(process.argv.slice(2)),
  (err: unknown) => reportFailure(err, () => {}), // a bundle missing a part: still one line
);
