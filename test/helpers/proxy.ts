// A loopback HTTP proxy in front of a real registry: counts requests, and on demand injects the
// faults real networks and registries produce (resets, 5xx, 429, truncated answers, cut uploads, 416),
// rewrites upload Locations to relative ones, refuses chunked uploads, or takes requests and never
// answers them (a hung link).
import http from 'node:http';
import { freePort, onCleanup } from './tools.js';

export type Fault =
  'reset-before' | 'reset-after' | '500' | '502' | '503' | '429' | 'truncate' | 'cut-upload' | '416' | 'hang';
/** The faults the random fault rate picks from ('hang' is asked for by itself: see ProxyOptions.hang). */
export const ALL_FAULTS: Fault[] = [
  'reset-before',
  'reset-after',
  '500',
  '502',
  '503',
  '429',
  'truncate',
  'cut-upload',
  '416',
];

export interface ProxyOptions {
  /** The registry, "127.0.0.1:PORT". */
  target: string;
  /** Share of requests that get a fault (0..1). */
  faultRate?: number;
  faults?: Fault[];
  /** Seed of the fault choices, so a failing run can be replayed. */
  seed?: number;
  relativeLocation?: boolean;
  /** Answer every PATCH 405, like registries that take monolithic uploads only. */
  refusePatch?: boolean;
  /**
   * Answers a request itself (and returns true) instead of forwarding it: a registry that refuses
   * one kind of request, or sends the client elsewhere.
   */
  intercept?: (req: http.IncomingMessage, res: http.ServerResponse) => boolean;
  /** Holds every request this long before handling it: a slow link, for tests that interrupt. */
  delayMs?: number;
  /** Rewrites the Location of an answer (e.g. to send uploads to another host). */
  rewriteLocation?: (location: string, req: http.IncomingMessage) => string;
  /**
   * The first `count` requests with this method are taken and never answered (nor forwarded): a
   * stuck server or link. `read`: whether their bodies are read (else the sender's buffers fill up).
   */
  hang?: { method: string; count: number; read?: boolean };
}

export interface ProxiedRequest {
  method: string;
  path: string;
  status: number;
  fault?: Fault;
  authorization: boolean;
  /** The Location the registry answered (before any rewrite), e.g. of a new upload session. */
  location?: string;
  /** When the request arrived (Date.now()). */
  at: number;
}

export interface Proxy {
  host: string;
  requests: ProxiedRequest[];
  faultRate: number;
  stop(): Promise<void>;
}

/** mulberry32: a tiny seeded PRNG. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export async function startProxy(opts: ProxyOptions): Promise<Proxy> {
  const port = await freePort();
  const random = prng(opts.seed ?? 1);
  const faults = opts.faults ?? ALL_FAULTS;
  const [targetHost, targetPort] = opts.target.split(':');
  const requests: ProxiedRequest[] = [];
  let hung = 0;
  const proxy: Proxy = {
    host: `127.0.0.1:${port}`,
    requests,
    faultRate: opts.faultRate ?? 0,
    stop: async () => {},
  };

  const server = http.createServer((req, res) => {
    if (opts.delayMs) {
      req.pause();
      setTimeout(() => {
        req.resume(); // the listeners handle() attaches, in this same tick, get every byte
        handle(req, res);
      }, opts.delayMs);
    } else handle(req, res);
  });
  const handle = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const record: ProxiedRequest = {
      method: req.method!,
      path: req.url!,
      status: 0,
      authorization: !!req.headers.authorization,
      at: Date.now(),
    };
    requests.push(record);
    if (opts.hang && req.method === opts.hang.method && hung < opts.hang.count) {
      hung++;
      record.fault = 'hang';
      if (opts.hang.read) req.resume();
      else req.pause();
      return;
    }
    const isUpload = req.method === 'PATCH' || req.method === 'PUT';
    let fault: Fault | undefined;
    if (proxy.faultRate > 0 && random() < proxy.faultRate) {
      const usable = faults.filter((f) =>
        f === 'cut-upload' ? isUpload : f === '416' ? req.method === 'PATCH' : true,
      );
      fault = usable[Math.floor(random() * usable.length)];
      record.fault = fault;
    }
    const answer = (status: number, headers: Record<string, string> = {}) => {
      record.status = status;
      req.resume();
      res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
      res.end(JSON.stringify({ errors: [{ code: 'UNKNOWN', message: `injected ${status}` }] }));
    };
    if (opts.refusePatch && req.method === 'PATCH') return answer(405);
    if (opts.intercept?.(req, res)) return;
    if (fault === 'reset-before') return req.socket.destroy();
    if (fault === '500' || fault === '502' || fault === '503') return answer(Number(fault));
    if (fault === '429') return answer(429, { 'Retry-After': '1' });
    if (fault === '416') return answer(416);

    const upstream = http.request(
      { host: targetHost, port: Number(targetPort), method: req.method, path: req.url, headers: req.headers },
      (up) => {
        record.status = up.statusCode ?? 0;
        const headers = { ...up.headers };
        if (typeof headers.location === 'string') record.location = headers.location;
        if (opts.relativeLocation && typeof headers.location === 'string') {
          const u = new URL(headers.location, `http://${proxy.host}`);
          headers.location = u.pathname + u.search;
        }
        if (opts.rewriteLocation && typeof headers.location === 'string')
          headers.location = opts.rewriteLocation(headers.location, req);
        if (fault === 'reset-after') {
          up.resume();
          up.on('end', () => req.socket.destroy());
          return;
        }
        res.writeHead(up.statusCode ?? 502, headers);
        if (fault === 'truncate') {
          let sent = 0;
          up.on('data', (d: Buffer) => {
            if (sent === 0) res.write(d.subarray(0, Math.max(1, d.length >> 1)));
            sent += d.length;
          });
          up.on('end', () => req.socket.destroy());
          return;
        }
        up.pipe(res);
      },
    );
    upstream.on('error', () => req.socket.destroy());
    if (fault === 'cut-upload') {
      // Forward part of the body, then drop both connections mid-upload.
      let forwarded = 0;
      const limit = Number(req.headers['content-length'] ?? 0) >> 1;
      req.on('data', (d: Buffer) => {
        if (forwarded >= limit) return;
        upstream.write(d.subarray(0, limit - forwarded));
        forwarded += d.length;
        if (forwarded >= limit) {
          upstream.destroy();
          req.socket.destroy();
        }
      });
      req.on('end', () => {
        upstream.destroy();
        req.socket.destroy();
      });
      return;
    }
    req.pipe(upstream);
  };
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  proxy.stop = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  onCleanup(proxy.stop);
  return proxy;
}
