/**
 * Everything that speaks the Actions runner's protocol: the log (with groups and debug lines), the
 * outputs, the job summary. Outside Actions the same calls print plain lines.
 */
import * as core from '@actions/core';
import type { Logger } from './log.js';

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

/** A log group (collapsed in the runner's log; `::group::` lines outside it). */
export function group<T>(title: string, fn: () => Promise<T>): Promise<T> {
  return core.group(title, fn);
}

/** Tells the runner to mask a secret in every later line (outside Actions that would print it). */
export function maskSecret(secret: string): void {
  if (inActions()) core.setSecret(secret);
}

/** What the pre step saved for this step (`core.saveState`), or ''. */
export function savedState(name: string): string {
  return core.getState(name);
}

/** The job summary in Actions (when the runner gives a summary file), else the plain-text report. */
export async function publishSummary(markdown: string, text: string, quiet: boolean): Promise<void> {
  if (process.env.GITHUB_STEP_SUMMARY) await core.summary.addRaw(markdown, true).write();
  if (!inActions() && !quiet) process.stdout.write('\n' + text + '\n\n');
}
