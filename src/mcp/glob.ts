/**
 * Compiles a glob for names and URIs: `*` is any run of characters (slashes included), `?` is one
 * character, everything else is literal. The whole string must match.
 */
export function compileGlob(pattern: string): (value: string) => boolean {
  if (!/[*?]/.test(pattern)) return (value) => value === pattern;
  const source = [...pattern].map((char) => (char === '*' ? '.*' : char === '?' ? '.' : char.replace(/[\\^$.|+()[\]{}]/g, '\\$&'))).join('');
  // `u`: a character is a code point, so `?` matches a whole emoji rather than half of one.
  const regex = new RegExp(`^${source}$`, 'su');
  return (value) => regex.test(value);
}
