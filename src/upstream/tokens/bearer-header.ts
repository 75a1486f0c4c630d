/**
 * How a token of the proxy's own travels upstream: `Authorization: Bearer <token>` by default, or the
 * bare token in another configured header. Returns the lower-case header name and the value maker.
 */
export function tokenHeader(configured: string): { readonly name: string; readonly value: (token: string) => string } {
  const name = configured.toLowerCase();
  return { name, value: name === 'authorization' ? (token) => `Bearer ${token}` : (token) => token };
}
