import './heap.js';
import { run } from './main.js';
import { stopCleanlyOnSignals } from './interrupt.js';

// Reads, zlib and hashing share libuv's pool (4 threads by default); it starts on first use, so this
// must be set before any of them. Twice the cores keeps both busy while reads wait on the disk.
process.env.UV_THREADPOOL_SIZE ??= '16';
// A reader that stops early (`| head`, `grep -q`) must not turn a finished snapshot into a crash.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
});
stopCleanlyOnSignals();
void run(process.argv.slice(2));
