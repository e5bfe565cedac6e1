import http from 'node:http';
import https from 'node:https';
import { StallError } from './retry.js';

export interface TransportInit {
  method: string;
  headers: Record<string, string>;
  /** A Buffer, or a body streamed once (its Content-Length set by the caller). */
  body?: Buffer | AsyncIterable<Uint8Array>;
  /** Aborts the exchange, answer body included (a timeout, the run's deadline). */
  signal: AbortSignal;
  /** The exchange fails with StallError when no byte moves for this long while it waits on the network. */
  stallMs?: number;
  /** Called once when a stall is detected, before the exchange fails. */
  onStall?: () => void;
}

/**
 * One HTTP exchange, no redirect followed, answered as a fetch `Response`. The default is
 * httpTransport; tests may inject a fetch-like function.
 */
export type Transport = (url: URL, init: TransportInit) => Promise<Response>;

/** Statuses whose answer has no body; a `Response` refuses to be built with one. */
const NULL_BODY = new Set([101, 204, 205, 304]);
/** Bodies are written in slices this size, so that bytes moving are seen while a big Buffer drains. */
const SLICE = 64 * 1024;

/**
 * The registry client's transport, over node:http/https: any port (fetch refuses the WHATWG "bad
 * ports", 6000 and 10080 among them), request bodies written only as fast as the socket drains (each
 * chunk let go once the socket has it; fetch kept every chunk of a streamed body until the end), and
 * a stall watchdog: while the exchange waits on the network (connecting, sending, awaiting the answer,
 * reading its body when asked for it) and no byte moves for `stallMs`, it fails with StallError.
 * Waiting on the caller (a compressor feeding the body, a reader not reading) is not a stall.
 */
export function httpTransport(url: URL, init: TransportInit): Promise<Response> {
  return new Promise((resolve, reject) => {
    let answer: http.IncomingMessage | undefined;
    let settled = false;
    let over = false;
    const watch = new Watchdog(init.stallMs ?? 0, () => {
      init.onStall?.();
      fail(new StallError(init.stallMs ?? 0));
    });
    const onAbort = () => fail(abortReason(init.signal));
    /** The exchange is over: the answer read or dropped, or a failure. */
    const finish = () => {
      over = true;
      watch.stop();
      init.signal.removeEventListener('abort', onAbort);
    };
    function fail(err: Error): void {
      if (over) return;
      finish();
      answer?.destroy(err); // a reader of the answer body hears why
      req.destroy(err);
      if (!settled) {
        settled = true;
        reject(err);
      }
    }

    if (init.signal.aborted) return reject(abortReason(init.signal));
    const headers = { ...init.headers };
    if (Buffer.isBuffer(init.body) && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-length'))
      headers['Content-Length'] = String(init.body.length);
    let req: http.ClientRequest;
    try {
      req = (url.protocol === 'https:' ? https.request : http.request)(url, { method: init.method, headers });
    } catch (err) {
      return reject(err as Error); // an invalid header value, say
    }
    init.signal.addEventListener('abort', onAbort, { once: true });
    watch.set('request', true);
    // After the answer, a broken pipe of the body still being sent is not the exchange's failure: a
    // registry may answer (and close) before reading the whole body, say a 401 or a digest refusal.
    req.on('error', (err) => {
      if (!answer) fail(err);
    });
    req.once('response', (res) => {
      answer = res;
      watch.progress();
      watch.set('request', false);
      try {
        resolve(toResponse(res, init.method, watch, finish));
        settled = true;
      } catch (err) {
        fail(err as Error); // a status a Response cannot carry
      }
    });
    sendBody(req, init.body, watch, () => answer !== undefined).catch((err: Error) => {
      if (!answer) fail(err);
    });
  });
}

async function sendBody(
  req: http.ClientRequest,
  body: TransportInit['body'],
  watch: Watchdog,
  answered: () => boolean,
): Promise<void> {
  const write = async (chunk: Uint8Array) => {
    for (let at = 0; at < chunk.length; at += SLICE) {
      if (!req.write(chunk.subarray(at, at + SLICE))) await drained(req);
      watch.progress();
    }
  };
  if (body instanceof Uint8Array) await write(body);
  else if (body) {
    const chunks = body[Symbol.asyncIterator]();
    try {
      for (;;) {
        watch.set('request', false); // waiting on the source, not on the network
        const next = await chunks.next();
        if (!answered()) watch.set('request', true);
        if (next.done) break;
        await write(next.value);
      }
    } catch (err) {
      await chunks.return?.().catch(() => {});
      throw err;
    }
  }
  req.end();
}

function drained(req: http.ClientRequest): Promise<void> {
  return new Promise((resolve, reject) => {
    const onDrain = () => {
      off();
      resolve();
    };
    const onClose = () => {
      off();
      reject(req.errored ?? new Error('the connection closed while sending'));
    };
    const off = () => {
      req.off('drain', onDrain);
      req.off('close', onClose);
    };
    req.on('drain', onDrain);
    req.on('close', onClose);
  });
}

/** The answer as a fetch Response whose body is read on demand, watched while a read waits. */
function toResponse(
  res: http.IncomingMessage,
  method: string,
  watch: Watchdog,
  finish: () => void,
): Response {
  const status = res.statusCode ?? 0;
  const headers = new Headers();
  for (let i = 0; i < res.rawHeaders.length; i += 2) headers.append(res.rawHeaders[i], res.rawHeaders[i + 1]);
  let body: ReadableStream<Uint8Array> | null = null;
  if (NULL_BODY.has(status) || method === 'HEAD') {
    res.resume();
    res.once('end', finish);
  } else {
    const chunks = res[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    body = new ReadableStream<Uint8Array>(
      {
        async pull(controller) {
          watch.set('answer', true);
          try {
            const next = await chunks.next();
            if (next.done) {
              finish();
              controller.close();
            } else {
              watch.progress();
              controller.enqueue(new Uint8Array(next.value.buffer, next.value.byteOffset, next.value.length));
            }
          } finally {
            watch.set('answer', false);
          }
        },
        cancel() {
          finish();
          // A whole answer is drained so its connection is reused; one still arriving is cut.
          if (res.complete) res.resume();
          else res.destroy();
        },
      },
      { highWaterMark: 0 },
    );
  }
  return new Response(body, { status, headers });
}

/** Fires once no byte has moved for `ms` while anything waits on the network. */
class Watchdog {
  private readonly waiting = new Set<string>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ms: number,
    private readonly onStall: () => void,
  ) {}

  /** `what` starts or stops waiting on the network; a new wait starts a fresh window. */
  set(what: 'request' | 'answer', waiting: boolean): void {
    if (waiting) {
      this.waiting.add(what);
      this.restart();
    } else {
      this.waiting.delete(what);
      if (!this.waiting.size) this.clear();
    }
  }

  /** Bytes moved: the window starts over. */
  progress(): void {
    if (this.waiting.size) this.restart();
  }

  stop(): void {
    this.waiting.clear();
    this.clear();
  }

  private restart(): void {
    if (!this.ms) return;
    if (this.timer) this.timer.refresh();
    else {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        if (this.waiting.size) this.onStall();
      }, this.ms);
      this.timer.unref();
    }
  }

  private clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}

function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error(String(reason));
}
