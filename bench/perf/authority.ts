// A tiny authorization server in the bench process: just real enough for mcp-warden. It publishes a
// JWKS with one RS256 and one ES256 key, answers RFC 7662 introspection for the opaque tokens it made,
// answers RFC 8693 token exchange at its token endpoint, and signs RFC 9068 access tokens. The proxy
// only calls it at start-up (keys), for the first use of an opaque token and for the first exchange of
// a token (the caches serve the rest), so it costs nothing during the measured windows.
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';

export const SCOPE = 'mcp:read';
const TOKEN_TTL_S = 3600;
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const MAX_FORM_BYTES = 16 * 1024;

export type SigningAlg = 'RS256' | 'ES256';

interface SigningKey {
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
}

export interface Authority {
  readonly issuer: string;
  readonly jwksUri: string;
  readonly introspectionEndpoint: string;
  /** RFC 8693 token exchange (client_secret_basic, the same client as introspection). */
  readonly tokenEndpoint: string;
  readonly clientId: string;
  /** Handed to the proxy through its environment, never written to its config file. */
  readonly clientSecret: string;
  /** Introspection calls answered so far: after warm-up it must stop growing (the cache serves). */
  readonly introspections: () => number;
  /** Requests at the token endpoint so far: after warm-up it must stop growing (the exchange cache serves). */
  readonly tokenRequests: () => number;
  mintJwt(alg: SigningAlg, audience: string, subject?: string): Promise<string>;
  /** An access token bound to a DPoP key (RFC 9449 §6.1: `cnf.jkt`, its RFC 7638 thumbprint). */
  mintBoundJwt(alg: SigningAlg, audience: string, jkt: string): Promise<string>;
  /** An opaque token the introspection endpoint will call active for `audience`. */
  mintOpaque(audience: string): string;
  close(): Promise<void>;
}

export async function startAuthority(): Promise<Authority> {
  const keys: Record<SigningAlg, SigningKey> = { RS256: await signingKey('RS256'), ES256: await signingKey('ES256') };
  const opaque = new Map<string, string>(); // token -> audience
  const clientId = 'mcp-warden-bench';
  const clientSecret = randomBytes(18).toString('base64url');
  let introspections = 0;
  let tokenRequests = 0;

  const server = createServer((req, res) => {
    route(req, res).catch(() => {
      if (!res.headersSent) json(res, 500, { error: 'server_error' });
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const jwksUri = `${issuer}/jwks`;
  const introspectionEndpoint = `${issuer}/introspect`;
  const tokenEndpoint = `${issuer}/token`;

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method === 'GET' && req.url === '/jwks') {
      json(res, 200, { keys: [keys.RS256.publicJwk, keys.ES256.publicJwk] });
    } else if (req.method === 'GET' && req.url === '/.well-known/oauth-authorization-server') {
      json(res, 200, { issuer, jwks_uri: jwksUri, introspection_endpoint: introspectionEndpoint, token_endpoint: tokenEndpoint });
    } else if (req.method === 'POST' && req.url === '/introspect') {
      introspections += 1;
      await introspect(req, res);
    } else if (req.method === 'POST' && req.url === '/token') {
      tokenRequests += 1;
      await exchange(req, res);
    } else {
      json(res, 404, { error: 'not_found' });
    }
  }

  const basicCredentials = `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`;

  async function introspect(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.headers.authorization !== basicCredentials) {
      req.resume();
      json(res, 401, { error: 'invalid_client' });
      return;
    }
    const token = new URLSearchParams(await readForm(req)).get('token') ?? '';
    const audience = opaque.get(token);
    if (audience === undefined) {
      json(res, 200, { active: false });
      return;
    }
    const now = Math.floor(Date.now() / 1000);
    json(res, 200, { active: true, aud: audience, scope: SCOPE, exp: now + TOKEN_TTL_S, iat: now, iss: issuer, sub: 'bench-opaque-user', client_id: 'bench' });
  }

  /**
   * RFC 8693: the client authenticated by Basic, the subject an access token, the answer a JWT for the
   * requested audience living an hour. The subject token is not verified: mcp-warden verified it before
   * it asked, and the bench only needs an exchange that answers like a real one.
   */
  async function exchange(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.headers.authorization !== basicCredentials) {
      req.resume();
      json(res, 401, { error: 'invalid_client' });
      return;
    }
    const form = new URLSearchParams(await readForm(req));
    if (form.get('grant_type') !== TOKEN_EXCHANGE) {
      json(res, 400, { error: 'unsupported_grant_type' });
      return;
    }
    const subjectToken = form.get('subject_token');
    if (!subjectToken || form.get('subject_token_type') !== ACCESS_TOKEN_TYPE) {
      json(res, 400, { error: 'invalid_request' });
      return;
    }
    const accessToken = await mintJwt('RS256', form.get('audience') ?? 'bench-upstream', 'bench-user');
    json(res, 200, { access_token: accessToken, issued_token_type: ACCESS_TOKEN_TYPE, token_type: 'Bearer', expires_in: TOKEN_TTL_S });
  }

  function mintJwt(alg: SigningAlg, audience: string, subject = 'bench-user', claims: Record<string, unknown> = {}): Promise<string> {
    const key = keys[alg];
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ scope: SCOPE, client_id: 'bench', ...claims })
      .setProtectedHeader({ alg, kid: key.kid, typ: 'at+jwt' })
      .setIssuer(issuer)
      .setAudience(audience)
      .setSubject(subject)
      .setIssuedAt(now)
      .setExpirationTime(now + TOKEN_TTL_S)
      .setJti(randomBytes(8).toString('base64url'))
      .sign(key.privateKey);
  }

  return {
    issuer,
    jwksUri,
    introspectionEndpoint,
    tokenEndpoint,
    clientId,
    clientSecret,
    introspections: () => introspections,
    tokenRequests: () => tokenRequests,
    mintJwt: (alg, audience, subject) => mintJwt(alg, audience, subject),
    mintBoundJwt: (alg, audience, jkt) => mintJwt(alg, audience, 'bench-user', { cnf: { jkt } }),
    mintOpaque: (audience) => {
      const token = `opaque-${randomBytes(24).toString('base64url')}`;
      opaque.set(token, audience);
      return token;
    },
    close: () => closeServer(server),
  };
}

async function signingKey(alg: SigningAlg): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg);
  const kid = `bench-${alg.toLowerCase()}`;
  return { kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

async function readForm(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) throw new Error('form too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) });
  res.end(text);
}

export async function closeServer(server: Server): Promise<void> {
  const closed = once(server, 'close');
  server.close();
  server.closeAllConnections();
  await closed;
}
