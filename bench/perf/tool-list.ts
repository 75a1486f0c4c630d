// The tools/list part of the bench: the request, the 200-tool answer the upstream gives it, and how the
// pre-measurement check reads an answer. The list is built once, the same in every process, from fixed
// names: 190 ordinary tools and 10 named delete_…, spread through the list as a real server's would be.

/** Tools in the upstream's tools/list answer. */
export const LIST_TOOLS = 200;
/** Of those, the ones named `delete_…`: the bench's policy rule hides them from a caller without mcp:admin. */
export const DELETE_TOOLS = 10;

export const LIST_BODY = '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}';
/** What the upstream looks for in a body to answer it with the list (the bench's bodies have no spaces). */
export const LIST_METHOD_MARK = '"method":"tools/list"';

const SUBJECTS = ['issue', 'project', 'file', 'user', 'comment', 'label', 'branch', 'release', 'pipeline', 'ticket'] as const;
const VERBS = [
  'get', 'list', 'create', 'update', 'search', 'archive', 'restore', 'export', 'import', 'sync',
  'count', 'assign', 'link', 'unlink', 'lock', 'unlock', 'watch', 'summarize', 'duplicate',
] as const;

interface Tool {
  readonly name: string;
  readonly description: string;
  readonly inputSchema: Record<string, unknown>;
}

/** 19 verbs × 10 subjects plus delete_<subject> for each subject, the delete after the subject's ninth verb. */
function buildTools(): Tool[] {
  const tools: Tool[] = [];
  for (const subject of SUBJECTS) {
    VERBS.forEach((verb, i) => {
      tools.push(tool(verb, subject));
      if (i === 8) tools.push(tool('delete', subject));
    });
  }
  return tools;
}

function tool(verb: string, subject: string): Tool {
  const name = `${verb}_${subject}`;
  const destructive = verb === 'delete';
  const a = /^[aeio]/.test(subject) ? 'an' : 'a';
  return {
    name,
    description: destructive
      ? `Permanently deletes ${a} ${subject} and everything attached to it. This cannot be undone; archive_${subject} keeps a copy.`
      : `${verb[0]!.toUpperCase()}${verb.slice(1)} ${a} ${subject} in the workspace. Returns the ${subject} as JSON with its id, title, state and timestamps.`,
    inputSchema: {
      type: 'object',
      properties: {
        id: { type: 'string', description: `The ${subject}'s id, as returned by list_${subject}.` },
        workspace: { type: 'string', description: 'The workspace slug; the caller’s default workspace when left out.' },
      },
      required: ['id'],
      additionalProperties: false,
    },
  };
}

const TOOLS = buildTools();
if (TOOLS.length !== LIST_TOOLS || TOOLS.filter((t) => t.name.startsWith('delete_')).length !== DELETE_TOOLS) {
  throw new Error('tool-list.ts: the generated list does not have the advertised shape');
}

/** Every tool name, in the upstream's order. */
export const TOOL_NAMES: readonly string[] = TOOLS.map((t) => t.name);
/** What a caller the delete_* rule applies to must get: every name but the delete_ ones, in the same order. */
export const FILTERED_TOOL_NAMES: readonly string[] = TOOL_NAMES.filter((name) => !name.startsWith('delete_'));

/** The upstream's whole answer to LIST_BODY (id 1), as sent. */
export const LIST_RESPONSE = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { tools: TOOLS } });

/** The tool names of a tools/list answer, in order; undefined when it is not one. */
export function toolNames(text: string): string[] | undefined {
  try {
    const message = JSON.parse(text) as { id?: unknown; result?: { tools?: unknown } };
    const tools = message.result?.tools;
    if (message.id !== 1 || !Array.isArray(tools)) return undefined;
    return tools.map((entry: unknown) => String((entry as { name?: unknown } | null)?.name));
  } catch {
    return undefined;
  }
}
