import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** Statuses whose answer has no body; a `Response` refuses to be built with one. */
const NULL_BODY = new Set([101, 204, 205, 304]);

/**
 * One HTTP exchange whose request body is streamed, answered as a fetch `Response`. fetch keeps every
 * chunk of a streamed request body referenced until the request ends (a 300 MB blob in one PUT held
 * 300 MB of Buffers, garbage collection or not, in Node 20 and 24); `node:http` lets each chunk go
 * once the socket has taken it, and writes only as fast as the socket drains.
 */
export function streamRequest(
  url: URL,
  method: string,
  headers: Record<string, string>,
  body: AsyncIterable<Uint8Array>,
  signal: AbortSignal,
): Promise<Response> {
  return new Promise((resolve, reject) => {
    const send = url.protocol === 'https:' ? https.request : http.request;
    const req = send(url, { method, headers, signal });
    let answered = false;
    req.once('response', (res) => {
      answered = true;
      const responseHeaders = new Headers();
      for (let i = 0; i < res.rawHeaders.length; i += 2)
        responseHeaders.append(res.rawHeaders[i], res.rawHeaders[i + 1]);
      const status = res.statusCode ?? 0;
      const stream = NULL_BODY.has(status) ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>);
      if (!stream) res.resume();
      resolve(new Response(stream, { status, statusText: res.statusMessage, headers: responseHeaders }));
    });
    req.on('error', reject); // later ones too: a cut body can error again after the answer
    // A registry may answer (and close) before it has read the whole body, say a 401 or a digest
    // refusal: the answer counts then, not the broken pipe it leaves behind.
    pipeline(body, req).catch((err: Error) => {
      if (!answered) {
        req.destroy(err);
        reject(err);
      }
    });
  });
}
