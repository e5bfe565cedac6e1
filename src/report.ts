import * as core from '@actions/core';
import { show, type Logger } from './log.js';
import { showShortened, type Exclusion } from './walk/walk.js';

export const inActions = () => process.env.GITHUB_ACTIONS === 'true';

export const coreLogger: Logger = makeLogger({ quiet: false });

/**
 * The run's log: info lines unless `quiet`; debug lines as the runner shows them (only with debug
 * logging on), and outside Actions only when RUNNER_DEBUG=1, as `debug: …`.
 */
export function makeLogger(opts: { quiet: boolean }): Logger {
  const debugOn = process.env.RUNNER_DEBUG === '1';
  return {
    info: (m) => {
      if (!opts.quiet) core.info(m);
    },
    warn: (m) => core.warning(m),
    debug: (m) => {
      if (inActions()) core.debug(m);
      // Every line of a multi-line message (a stack trace) marked, so none passes for a log line.
      else if (debugOn) process.stdout.write(m.replace(/^/gm, 'debug: ') + '\n');
    },
  };
}

/** Sets outputs; outside Actions also prints them as `name=value` lines for scripts. */
export function setOutputs(outputs: Record<string, string | number | boolean>): void {
  for (const [name, value] of Object.entries(outputs)) {
    if (process.env.GITHUB_OUTPUT) core.setOutput(name, value);
  }
  if (!inActions()) {
    for (const [name, value] of Object.entries(outputs)) process.stdout.write(`${name}=${value}\n`);
  }
}

/** What the walk left out, grouped by reason, with the first few paths of each. */
export function describeExclusions(excluded: Exclusion[], sockets: Buffer[]): string[] {
  const byReason = new Map<string, string[]>();
  for (const e of excluded) {
    const list = byReason.get(e.reason) ?? [];
    // Shortened: a path left out for its length is thousands of bytes.
    list.push(showShortened(Buffer.concat([Buffer.from('/'), e.path])));
    byReason.set(e.reason, list);
  }
  if (sockets.length)
    byReason.set(
      'socket (cannot be stored in an image)',
      sockets.map((s) => show(Buffer.concat([Buffer.from('/'), s]))),
    );
  const lines: string[] = [];
  for (const [reason, paths] of byReason) {
    const shown = paths.slice(0, 5).join(', ');
    lines.push(`${reason}: ${paths.length} (${shown}${paths.length > 5 ? ', …' : ''})`);
  }
  return lines;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}
