import { AuthFailure } from '../auth/failure.ts';
import { rawHeaderValues } from '../proxy/raw-headers.ts';
import { parseRequestPath } from '../proxy/request-path.ts';
import type { PipelineParts } from './parts.ts';
import { refuse } from './refuse.ts';
import type { Step } from './step.ts';

/** What every request passes before anything answers it, public routes included: headers, Host and path. */
export function screen(parts: PipelineParts, next: Step): Step {
  const maxHeaders = parts.config.limits.max_headers;
  const allowedHosts = new Set(parts.config.listen.allowed_hosts.map((host) => host.toLowerCase()));
  return (req, res, access) => {
    // Node keeps reading past its header count limit and drops the rest silently: refuse instead.
    if (req.rawHeaders.length / 2 > maxHeaders) return refuse(parts, res, access, new AuthFailure('too_many_headers'));
    if (rawHeaderValues(req.rawHeaders, 'host').length > 1) return refuse(parts, res, access, new AuthFailure('malformed_request', 'more than one Host header'));
    if (allowedHosts.size > 0 && !allowedHosts.has((req.headers.host ?? '').toLowerCase())) return refuse(parts, res, access, new AuthFailure('host_denied'));
    const target = parseRequestPath(req.url ?? '/');
    if (!target.ok) return refuse(parts, res, access, new AuthFailure('ambiguous_path', target.problem));
    access.path = target.path;
    access.query = target.query;
    return next(req, res, access);
  };
}
