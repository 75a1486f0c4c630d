// Runs the official MCP SDK client through the whole OAuth flow against the demo, then calls tools.
// `npm run demo:client` (with `npm run demo` running), or pass an MCP URL.
import { decodeJwt } from 'jose';
import { answerConsent, connectWithOAuth } from './oauth-client.ts';

const url = process.argv[2] ?? `http://127.0.0.1:${process.env.DEMO_WARDEN_PORT ?? 8080}/mcp`;
// A consent page (the broker's, with `npm run demo -- --broker`) is approved as a user would.
const connection = await connectWithOAuth(url, { clientName: 'mcp-warden demo client', browser: { cookies: new Map(), onPage: answerConsent('approve') } });
const claims = decodeJwt(connection.accessToken());
console.log(`authorized: sub=${claims.sub} client_id=${claims.client_id} aud=${JSON.stringify(claims.aud)} scope="${claims.scope}"`);

const { tools } = await connection.client.listTools();
console.log(`tools: ${tools.map((tool) => tool.name).join(', ')}`);
// The demo's own server has echo {text} and countdown; server-everything (--stdio) has echo {message}
// and trigger-long-running-operation.
const everything = tools.some((tool) => tool.name === 'trigger-long-running-operation');
const echo = await connection.client.callTool({ name: 'echo', arguments: everything ? { message: 'hello through mcp-warden' } : { text: 'hello through mcp-warden' } });
console.log(`echo -> ${JSON.stringify(echo.content)}`);
const progressTool = everything ? { name: 'trigger-long-running-operation', arguments: { duration: 1, steps: 3 } } : { name: 'countdown', arguments: { steps: 3, interval_ms: 300 } };
const progressed = await connection.client.callTool(progressTool, undefined, {
  onprogress: (progress) => console.log(`  progress ${progress.progress}/${progress.total ?? '?'}${progress.message ? ` (${progress.message})` : ''}`),
});
console.log(`${progressTool.name} -> ${JSON.stringify(progressed.content)}`);
await connection.close();
