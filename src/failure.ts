/**
 * How a run ends when it fails, the same for the main step, the pre step and an interrupt: one
 * `::error::` line and a non-zero exit. Kept free of heavy imports: the signal handler that uses it
 * is installed before the rest of the action is loaded.
 */

/** An error whose message is the whole story: what is wrong and what to do. Shown alone, no stack. */
export class UserError extends Error {
  /** Something this user may not read: the same run as root (under sudo) may succeed. */
  readonly rootMayHelp: boolean = false;
}

/** Bad input (an input, a flag, a path given): reported as one line, exit 1, before anything is written. */
export class InputError extends UserError {}

/** The one line a failure ends with: a user error's own message, anything else as a failed snapshot. */
export function failureMessage(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return oneLine(err instanceof UserError ? message : `snapshot failed: ${message}`);
}

/**
 * Ends the run as failed (exit code 1). An error that is not the user's keeps its stack for a debug
 * line (`debug`, the logger's: shown only with debug logging on), never in the error line.
 */
export function reportFailure(err: unknown, debug: (message: string) => void): void {
  if (!(err instanceof UserError)) debug(err instanceof Error && err.stack ? err.stack : String(err));
  writeErrorLine(failureMessage(err));
  process.exitCode = 1;
}

/** `::error::` as @actions/core writes it; a newline would start a second line (or a runner command). */
export function writeErrorLine(message: string): void {
  process.stdout.write(`::error::${oneLine(message).replace(/%/g, '%25')}\n`);
}

function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}
