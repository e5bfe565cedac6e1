/** What the stages need to talk to the user: plain functions, so they run outside Actions too. */
export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  debug(message: string): void;
}

export const silentLogger: Logger = { info() {}, warn() {}, debug() {} };

/**
 * A path fit for one log line: control bytes (a newline in a name could end the line and start a
 * runner command) and bytes that are not UTF-8 are shown as `\xNN`.
 */
export function show(p: Buffer | string): string {
  const bytes = typeof p === 'string' ? Buffer.from(p) : p;
  const text = bytes.toString('utf8');
  const clean = Buffer.from(text).equals(bytes)
    ? text
    : bytes.toString('latin1').replace(/[\x80-\xff]/g, (c) => `\\x${c.charCodeAt(0).toString(16)}`);
  return clean.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
