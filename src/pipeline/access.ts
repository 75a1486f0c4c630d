import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Principal } from '../auth/principal.ts';
import type { PolicyDecision } from '../mcp/policy.ts';
import type { ToolCallAudit } from '../observability/tool-call-audit.ts';
import type { RequestTrace } from '../tracing/request-trace.ts';
import type { Outcome } from '../observability/metrics.ts';
import type { AnswerWatch, UpstreamOutcome } from '../upstream/upstream.ts';

/**
 * One request on its way: what each stage decided for the ones after it, and what the access log line
 * says about the request, filled in as it goes.
 */
export class Access {
  outcome: Outcome = 'denied';
  reason: string | undefined = undefined;
  /** The request target as screened: the path routing compares (and the upstream serves), and the query. */
  path = '';
  query = '';
  principal: Principal | undefined = undefined;
  /** A short hash of the token, to correlate lines of one token without ever logging it. */
  tokenHash: string | undefined = undefined;
  /** The verified token itself, for a credential that exchanges it; never logged, never forwarded. */
  token: string | undefined = undefined;
  /** The DPoP proof of a token presented with the `DPoP` scheme; undefined for a bearer token. Never logged. */
  dpopProof: string | undefined = undefined;
  /** The body when it was read for inspection; otherwise the request stream still holds it. */
  body: Buffer | undefined = undefined;
  /** Our credential's headers for the upstream, once they are at hand. */
  credential: Record<string, string> | undefined = undefined;
  /** The JSON-RPC methods of the request, and the first message's target, when known. */
  rpc: { methods: ReadonlyArray<string | undefined>; target: string | undefined } | undefined = undefined;
  /** What policy decided of each message of a body that was read, and whether the body was a batch. */
  decision: PolicyDecision | undefined = undefined;
  batch = false;
  /** The JSON-RPC id a refusal answered in JSON-RPC names. */
  rpcId: string | number | null = null;
  /** The audit lines of the request's tool calls, written as their answers come. */
  toolCalls: ToolCallAudit | undefined = undefined;
  /** Reads the upstream's answers on their way to the client: list filtering and the audit's outcomes. */
  answers: AnswerWatch | undefined = undefined;
  /** Filled in by the upstream as the exchange goes; final once the response has closed. */
  upstream: UpstreamOutcome | undefined = undefined;
  /** The request's spans, when tracing is on. */
  trace: RequestTrace | undefined = undefined;
  /** The client sent `Expect: 100-continue` and has not been told to send its body. */
  awaitingContinue: boolean;
  /** The line is written once both the pipeline and the response are over: this counts them down. */
  pending = 2;
  readonly started = performance.now();
  readonly requestId: string;
  /** The request's ticket in the in-flight count. */
  readonly ticket: number;
  /** Kept here: Node detaches it from a request that was destroyed, and the line still needs it. */
  readonly socket: Socket;
  /** What the connection had written before this response, so the line can say what this one wrote. */
  readonly bytesBefore: number;

  constructor(req: IncomingMessage, requestId: string, ticket: number) {
    const expect = req.headers.expect;
    this.awaitingContinue = expect !== undefined && expect.toLowerCase() === '100-continue';
    this.requestId = requestId;
    this.ticket = ticket;
    this.socket = req.socket;
    this.bytesBefore = req.socket.bytesWritten;
  }
}
