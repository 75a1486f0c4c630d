/** How a confidential client authenticates at an authorization server's endpoints (RFC 6749 §2.3.1). */
export type ClientAuthMethod = 'client_secret_basic' | 'client_secret_post';

/**
 * Adds the client's credentials to a token or introspection request: as form fields, or as Basic
 * credentials whose two parts are form-encoded before they are joined and base64-encoded. Returns the
 * headers to send.
 */
export function addClientCredentials(form: URLSearchParams, method: ClientAuthMethod, clientId: string, secret: string): Record<string, string> {
  if (method === 'client_secret_post') {
    form.set('client_id', clientId);
    form.set('client_secret', secret);
    return {};
  }
  return { authorization: `Basic ${Buffer.from(`${formEncode(clientId)}:${formEncode(secret)}`).toString('base64')}` };
}

/**
 * The Basic credentials of an Authorization header, undefined when it holds none, or 'malformed'.
 * `rawSecret` is the secret as sent, before form-decoding: some clients skip the encoding.
 */
export function readBasicCredentials(header: string | undefined): { id: string; secret: string; rawSecret: string } | 'malformed' | undefined {
  if (!header || !/^basic /i.test(header)) return undefined;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return 'malformed';
  const rawSecret = decoded.slice(colon + 1);
  try {
    return { id: formDecode(decoded.slice(0, colon)), secret: formDecode(rawSecret), rawSecret };
  } catch {
    return 'malformed';
  }
}

function formEncode(value: string): string {
  return encodeURIComponent(value).replaceAll('%20', '+');
}

function formDecode(value: string): string {
  return decodeURIComponent(value.replaceAll('+', ' '));
}
