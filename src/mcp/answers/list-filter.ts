/** Where a list result keeps its entries, what names each entry, and the method that would use it. */
export interface ListShape {
  readonly callMethod: 'tools/call' | 'prompts/get' | 'resources/read';
  readonly member: 'tools' | 'prompts' | 'resources' | 'resourceTemplates';
  readonly key: 'name' | 'uri' | 'uriTemplate';
}

/** The list methods whose answers are filtered, and how. */
export const LIST_SHAPES: ReadonlyMap<string, ListShape> = new Map([
  ['tools/list', { callMethod: 'tools/call', member: 'tools', key: 'name' }],
  ['prompts/list', { callMethod: 'prompts/get', member: 'prompts', key: 'name' }],
  ['resources/list', { callMethod: 'resources/read', member: 'resources', key: 'uri' }],
  // A template is judged by its `uriTemplate` as written: a rule's glob that covers it hides it.
  ['resources/templates/list', { callMethod: 'resources/read', member: 'resourceTemplates', key: 'uriTemplate' }],
]);

export interface FilteredList {
  readonly result: Record<string, unknown>;
  readonly hidden: number;
}

/**
 * Drops the entries `allows` refuses from a list result, keeping every other member (`nextCursor`,
 * `ttlMs`, `_meta`) as it was. An entry without a string name cannot be judged, so it is dropped too.
 * A result that varies by caller says so (2026-07-28 caching): it must not be cached for anyone else.
 */
export function filterList(result: Record<string, unknown>, shape: ListShape, allows: (target: string) => boolean, markPrivate: boolean): FilteredList {
  const entries = result[shape.member];
  const kept = Array.isArray(entries) ? entries.filter((entry: unknown) => isAllowed(entry, shape.key, allows)) : [];
  const hidden = Array.isArray(entries) ? entries.length - kept.length : 0;
  if (hidden === 0 && Array.isArray(entries) && (!markPrivate || result.cacheScope === 'private')) return { result, hidden: 0 };
  const filtered: Record<string, unknown> = { ...result, [shape.member]: kept };
  if (markPrivate) filtered.cacheScope = 'private';
  return { result: filtered, hidden };
}

function isAllowed(entry: unknown, key: ListShape['key'], allows: (target: string) => boolean): boolean {
  if (typeof entry !== 'object' || entry === null) return false;
  const name = (entry as Record<string, unknown>)[key];
  return typeof name === 'string' && allows(name);
}
