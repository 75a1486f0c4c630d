import { ConfigError } from '../../src/config/errors.ts';
import { parseConfigText } from '../../src/config/load.ts';

/** Every problem a config text is refused with (path and message); throws when it is accepted. */
export function problemsOf(text: string): Array<{ path: string; message: string }> {
  try {
    parseConfigText(text);
  } catch (error) {
    if (error instanceof ConfigError) return [...error.problems];
    throw error;
  }
  throw new Error('expected a ConfigError');
}
