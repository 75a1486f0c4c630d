import type { ServerResponse } from 'node:http';
import { escapeHtml, sendPage } from './pages.ts';

/** What the person in front of the page can do about it; each says who can fix what they cannot. */
export type NextStep = 'retry' | 'wait' | 'developer' | 'operator';

const NEXT_STEPS: Record<NextStep, string> = {
  retry: 'Go back to the application and start signing in again from there.',
  wait: 'Wait a minute, then start signing in again from the application.',
  developer: "The application is not set up to sign in here, and trying again will not help. Contact the application's developer and tell them what this page says.",
  operator: 'Try again in a few minutes. If it keeps happening, contact whoever runs this server and give them the request id below.',
};

/**
 * A problem that must not be sent to the client's redirect URI (it may not be the client's): what
 * happened, what to do next, and the request id that finds the operator's log line. Nothing internal
 * (no stack, no store key) ever reaches the page.
 */
export function sendErrorPage(res: ServerResponse, status: number, message: string, next: NextStep, headers: Readonly<Record<string, string>> = {}): void {
  const requestId = res.getHeader('x-request-id');
  const reference = typeof requestId === 'string' ? `<p class="small">Request id: <code>${escapeHtml(requestId)}</code></p>` : '';
  sendPage(res, {
    status,
    title: 'Sign-in stopped',
    body: `<h1>This sign-in cannot continue</h1>
<h2>What happened</h2><p>${escapeHtml(message)}</p>
<h2>What you can do</h2><p>${NEXT_STEPS[next]}</p>${reference}`,
    headers,
  });
}
