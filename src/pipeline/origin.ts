import { AuthFailure } from '../auth/failure.ts';
import { createCors } from '../proxy/cors.ts';
import type { PipelineParts } from './parts.ts';
import { refuse } from './refuse.ts';
import type { Step } from './step.ts';

/** The Origin of a browser's request must be allowed; an allowed one gets its CORS grant on the answer. */
export function checkOrigin(parts: PipelineParts, next: Step): Step {
  const cors = createCors(parts.config.cors.allowed_origins, new URL(parts.config.resource.url).origin);
  return (req, res, access) => {
    const origin = req.headers.origin;
    // DNS rebinding: a browser page from elsewhere is refused before its token is even looked at.
    if (origin !== undefined && !cors.allows(origin)) return refuse(parts, res, access, new AuthFailure('origin_denied'));
    cors.decorate(origin, res);
    return next(req, res, access);
  };
}
