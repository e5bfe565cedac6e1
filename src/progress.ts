import type { Logger } from './log.js';
import { formatBytes } from './util/format.js';

/** Counters the stages bump as they go; the progress reporter only reads them. */
export interface Counters {
  /** Entries the walk has looked at. */
  entries: number;
  /** File content written into layers: the unit of the phase's total, headers left out. */
  read: number;
  /** Bytes after compression: what goes to the layout or the registry. */
  compressed: number;
}

/** Seconds between progress lines in a log; `SNAPSHOT_PROGRESS_SECONDS` changes it (0: never). */
const LOG_INTERVAL_MS = 1000 * Number(process.env.SNAPSHOT_PROGRESS_SECONDS ?? 5);
const BAR_INTERVAL_MS = 250;

/**
 * Tells a waiting user how a long phase is going: a line every few seconds in a log (entries walked,
 * bytes read and compressed, MB/s, ETA), or one line redrawn in place on a terminal.
 */
export class Progress {
  readonly counters: Counters = { entries: 0, read: 0, compressed: 0 };
  private timer?: NodeJS.Timeout;
  private phase = '';
  private total = 0;
  private startedAt = 0;
  private startRead = 0;
  private barShown = false;

  constructor(
    private readonly log: Logger,
    private readonly terminal: NodeJS.WriteStream | null,
    private readonly enabled = true,
  ) {}

  /** A logger whose lines first clear the bar, so the two never share a line. */
  wrap(log: Logger): Logger {
    const clear = () => this.clearBar();
    return {
      info: (m) => (clear(), log.info(m)),
      warn: (m) => (clear(), log.warn(m)),
      debug: (m) => (clear(), log.debug(m)),
    };
  }

  /** Starts reporting on `phase`; `total` is the bytes it will read, when known (for the ETA). */
  start(phase: 'walk' | 'layers', total = 0): void {
    this.stop();
    this.phase = phase;
    this.total = total;
    this.startedAt = Date.now();
    this.startRead = this.counters.read;
    const interval = this.terminal ? BAR_INTERVAL_MS : LOG_INTERVAL_MS;
    if (!this.enabled || interval <= 0) return;
    this.timer = setInterval(() => this.tick(), interval);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.clearBar();
  }

  /** What the phase has done so far, as one line. */
  line(now = Date.now()): string {
    const seconds = Math.max((now - this.startedAt) / 1000, 0.001);
    const { entries, read, compressed } = this.counters;
    if (this.phase === 'walk') return `walk: ${entries.toLocaleString('en-US')} entries looked at`;
    const done = read - this.startRead;
    const rate = done / seconds;
    const parts = [`layers: ${formatBytes(done)}`];
    if (this.total)
      parts[0] += ` of ${formatBytes(this.total)} (${Math.min(100, (100 * done) / this.total).toFixed(0)} %)`;
    parts.push(`${formatBytes(compressed)} compressed`, `${(rate / 1e6).toFixed(1)} MB/s`);
    if (this.total && rate > 0 && done < this.total) parts.push(`ETA ${eta((this.total - done) / rate)}`);
    return parts.join(', ');
  }

  private tick(): void {
    if (!this.terminal) return this.log.info(this.line());
    const text = this.line().slice(0, Math.max(20, (this.terminal.columns || 80) - 1));
    this.terminal.write(`\r\x1b[K${text}`);
    this.barShown = true;
  }

  private clearBar(): void {
    if (!this.barShown || !this.terminal) return;
    this.terminal.write('\r\x1b[K');
    this.barShown = false;
  }
}

function eta(seconds: number): string {
  if (seconds < 60) return `${Math.ceil(seconds)} s`;
  const m = Math.floor(seconds / 60);
  return m < 60 ? `${m} min ${Math.round(seconds % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}
