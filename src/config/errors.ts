export interface ConfigProblem {
  /** Where in the YAML, e.g. `authorization_servers[0].issuer`; empty for the whole document. */
  readonly path: string;
  readonly message: string;
}

/** Every problem in a config at once, so an operator fixes them in one pass. */
export class ConfigError extends Error {
  readonly problems: readonly ConfigProblem[];

  constructor(source: string, problems: readonly ConfigProblem[]) {
    super(`${source}: ${problems.length} problem${problems.length === 1 ? '' : 's'}\n${problems.map(formatProblem).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export function formatProblem(problem: ConfigProblem): string {
  return `  ${problem.path || '(document)'}: ${problem.message}`;
}
