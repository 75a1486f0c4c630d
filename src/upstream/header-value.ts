/** The longest claim sent, in UTF-8 bytes of the value before any encoding. */
export const MAX_HEADER_VALUE_BYTES = 1024;

const PREFIX = '=?base64?';
const SUFFIX = '?=';
const PLAIN = /^[\x20-\x7e]*$/;
/** C0 (CR, LF, NUL, tab…), DEL and C1 (NEL…), and the Unicode line and paragraph separators. */
const LINE_BREAKING = /[\p{Cc}\p{Zl}\p{Zp}]/u;

/** Why a value cannot be sent in a header. */
export type HeaderValueProblem = 'empty' | 'control_character' | 'ill_formed_unicode' | 'too_long';

export type HeaderValue = { readonly ok: true; readonly value: string } | { readonly ok: false; readonly problem: HeaderValueProblem };

/**
 * A text as an HTTP header value, by the MCP 2026-07-28 rule (Streamable HTTP, "Value Encoding"):
 * printable ASCII with no leading or trailing space is sent as it is; anything else, and any value
 * that itself looks like `=?base64?…?=`, is sent as `=?base64?{standard, padded Base64 of the UTF-8}?=`.
 *
 * Stricter than that rule, which would encode control characters too: a value with a control
 * character (tab, CR, LF and NUL included), a line or paragraph separator, a lone surrogate (which has
 * no UTF-8), more than {@link MAX_HEADER_VALUE_BYTES} bytes, or nothing at all is not sent, since a
 * server that decodes the value and then splits it into lines or fields would be fooled by it.
 */
export function headerValue(text: string): HeaderValue {
  if (text === '') return { ok: false, problem: 'empty' };
  if (LINE_BREAKING.test(text)) return { ok: false, problem: 'control_character' };
  if (!text.isWellFormed()) return { ok: false, problem: 'ill_formed_unicode' };
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length > MAX_HEADER_VALUE_BYTES) return { ok: false, problem: 'too_long' };
  const plain = PLAIN.test(text) && !text.startsWith(' ') && !text.endsWith(' ') && !(text.startsWith(PREFIX) && text.endsWith(SUFFIX));
  return { ok: true, value: plain ? text : `${PREFIX}${bytes.toString('base64')}${SUFFIX}` };
}
