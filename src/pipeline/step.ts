import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Access } from './access.ts';
import type { PipelineParts } from './parts.ts';

/**
 * One stage's handling of a request. It answers the request itself or hands it to the next stage, and
 * returns a promise only when it had to wait (a token lookup, a body, a user's credential).
 */
export type Step = (req: IncomingMessage, res: ServerResponse, access: Access) => void | Promise<void>;

/** Builds a stage once per pipeline, around the step that comes after it: nothing is built per request. */
export type Stage = (parts: PipelineParts, next: Step) => Step;

/** The stage that ends the way: nothing comes after it. */
export type LastStage = (parts: PipelineParts) => Step;

/** Joins the stages in the order given, each handing on to the one after it. */
export function chain(parts: PipelineParts, stages: readonly Stage[], last: LastStage): Step {
  return stages.reduceRight<Step>((next, stage) => stage(parts, next), last(parts));
}
