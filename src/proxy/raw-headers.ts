/**
 * Every value of one header, from the raw header lines: Node keeps only the first duplicate of some
 * headers (Authorization, Host) in `req.headers`, and a duplicate is exactly what must be seen.
 */
export function rawHeaderValues(rawHeaders: readonly string[], name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === name) values.push(rawHeaders[i + 1] ?? '');
  return values;
}
