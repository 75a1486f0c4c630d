import { describe, expect, it } from 'vitest';
import { consentPageSettings } from '../../src/broker/consent-page.ts';
import { parseConfigText } from '../../src/config/load.ts';
import { problemsOf } from '../helpers/config-problems.ts';

const config = (resource: string, consent = '', provider = '') => `
resource: { url: https://mcp.example.com/mcp, scopes_supported: [mcp:read, mcp:write]${resource} }
upstream: { url: http://127.0.0.1:3000 }
broker:
  identity_provider: { issuer: https://login.example.com, client_id: mcp-warden, client_secret: "\${env:IDP_SECRET}"${provider} }
  consent: { remember: 1d${consent} }
`;
const PNG = 'data:image/png;base64,iVBORw0KGgo=';

describe('config: what the consent page shows', () => {
  it('takes scope descriptions, a provider display name, a title and an https or data-URL logo', () => {
    const parsed = parseConfigText(config(', scope_descriptions: { mcp:read: Read your files }', ', title: Allow Example?, logo_url: https://cdn.example.com/logo.svg', ', display_name: Example Login'));
    expect(parsed.resource.scope_descriptions).toEqual({ 'mcp:read': 'Read your files' });
    expect(parsed.broker!.identity_provider.display_name).toBe('Example Login');
    expect(parsed.broker!.consent).toMatchObject({ title: 'Allow Example?', logo_url: 'https://cdn.example.com/logo.svg' });
    expect(parseConfigText(config('', `, logo_url: "${PNG}"`)).broker!.consent.logo_url).toBe(PNG);
  });

  it("names the identity provider by its issuer's host unless display_name says otherwise, and leaves title and logo to the page", () => {
    const parsed = parseConfigText(config(''));
    expect(consentPageSettings(parsed.resource, parsed.broker!)).toEqual({ resourceName: undefined, scopeDescriptions: {}, identityProvider: 'login.example.com', title: undefined, logoUrl: undefined });
  });

  it('refuses a description of a scope that is not in scopes_supported, at its YAML path', () => {
    expect(problemsOf(config(', scope_descriptions: { mcp:admin: Everything }'))).toEqual([{ path: 'resource.scope_descriptions.mcp:admin', message: 'mcp:admin is not in resource.scopes_supported' }]);
  });

  it.each([
    ['plain http', 'http://cdn.example.com/logo.png'],
    ['a javascript: URL', 'javascript:alert(1)'],
    ['an HTML data URL', 'data:text/html;base64,PHNjcmlwdD4='],
    ['a data URL that is not base64', 'data:image/svg+xml,<svg onload=alert(1)>'],
  ])('refuses %s as the logo', (_name, logo) => {
    expect(problemsOf(config('', `, logo_url: "${logo}"`)).map((problem) => problem.path)).toEqual(['broker.consent.logo_url']);
  });
});
