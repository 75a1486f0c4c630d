import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One span as OTLP/JSON carries it, attributes flattened to their values. */
export interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string | undefined;
  readonly name: string;
  /** OTLP's numbers: 1 internal, 2 server, 3 client. */
  readonly kind: number;
  readonly attributes: Readonly<Record<string, unknown>>;
  readonly resource: Readonly<Record<string, unknown>>;
}

export interface OtlpReceiver {
  /** The traces URL: http://127.0.0.1:PORT/v1/traces */
  readonly url: string;
  readonly spans: ReceivedSpan[];
  /** Raw request bodies and headers as they came, for scans. */
  readonly requests: Array<{ headers: IncomingMessage['headers']; body: string }>;
  /** Export requests that arrived, answered or not. */
  readonly arrived: () => number;
  close(): Promise<void>;
}

/**
 * An OTLP/HTTP collector on loopback: `normal` keeps every span of every POST /v1/traces; `hang` reads
 * the request and never answers (a collector that is stuck).
 */
export async function startOtlpReceiver(mode: 'normal' | 'hang' = 'normal'): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const requests: OtlpReceiver['requests'] = [];
  let arrived = 0;
  const server = createServer((req, res) => {
    arrived += 1;
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (mode === 'hang') return;
      const body = Buffer.concat(chunks).toString('utf8');
      requests.push({ headers: req.headers, body });
      answer(req, res, body, spans);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1/traces`,
    spans,
    requests,
    arrived: () => arrived,
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

function answer(req: IncomingMessage, res: ServerResponse, body: string, spans: ReceivedSpan[]): void {
  if (req.method !== 'POST' || req.url !== '/v1/traces') {
    res.writeHead(404).end();
    return;
  }
  const document = JSON.parse(body) as { resourceSpans?: Array<{ resource?: { attributes?: OtlpAttribute[] }; scopeSpans?: Array<{ spans?: OtlpSpan[] }> }> };
  for (const resourceSpans of document.resourceSpans ?? []) {
    const resource = flatten(resourceSpans.resource?.attributes);
    for (const scope of resourceSpans.scopeSpans ?? []) {
      for (const span of scope.spans ?? []) {
        spans.push({ traceId: span.traceId, spanId: span.spanId, parentSpanId: span.parentSpanId || undefined, name: span.name, kind: span.kind, attributes: flatten(span.attributes), resource });
      }
    }
  }
  res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
}

interface OtlpAttribute {
  key: string;
  value: Record<string, unknown>;
}

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: OtlpAttribute[];
}

function flatten(attributes: OtlpAttribute[] | undefined): Record<string, unknown> {
  const flat: Record<string, unknown> = {};
  for (const { key, value } of attributes ?? []) flat[key] = value.stringValue ?? value.intValue ?? value.boolValue ?? value.doubleValue ?? value;
  return flat;
}
