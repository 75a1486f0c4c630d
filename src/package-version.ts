import { readFileSync } from 'node:fs';

/** The version in package.json; src/ and dist/ both sit one level below it. */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}
