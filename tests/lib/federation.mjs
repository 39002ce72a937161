// A tenant with two real OpenID providers at once: a "social" one (the dev
// IdP's usual users, 127.0.0.2, sends the RFC 9207 `iss` parameter) and an
// "enterprise" one (its own users, 127.0.0.3, no `iss` parameter, like
// providers that predate RFC 9207), both node-oidc-provider (tests/idp/idp.mjs).
// Both know a user `alice`: the same raw subject at two providers, which must
// reach the origin as two different people.

import assert from 'node:assert/strict';
import { freePort } from './procs.mjs';
import { CLIENT_SECRET, startGateway, startIdp, startOrigin } from './stack.mjs';
import { request } from './http.mjs';
import { walkIdp } from './idp-flow.mjs';
import { startGithub } from './github.mjs';

export const TENANT_NAME = 'Acme Corp';
export const ENTERPRISE_DOMAIN = 'acme.test';
/** The enterprise IdP's people; `alice` is also the social IdP's alice (another person). */
export const ENTERPRISE_USERS = {
  alice: {
    password: 'alice-pw',
    claims: {
      email: `alice@${ENTERPRISE_DOMAIN}`, email_verified: true, name: 'Alice Acme',
      preferred_username: 'alice', groups: ['staff'],
    },
  },
  carol: {
    password: 'carol-pw',
    claims: {
      email: `carol@${ENTERPRISE_DOMAIN}`, email_verified: true, name: 'Carol Acme',
      preferred_username: 'carol', groups: ['staff', 'finance'],
    },
  },
};

/** The callback path of connection `id` (`null`: the single-IdP path). */
export const callbackPath = (id) => (id ? `/.edgeauth/callback/${id}` : '/.edgeauth/callback');

/** The tenant's `connections` variable for the two providers. */
export function connectionsFor({ social, enterprise }, { clientId = 'edgeauth' } = {}) {
  return [
    { id: 'social', name: 'Social Login', kind: 'oidc', issuer: social.issuer, client_id: clientId, client_secret: CLIENT_SECRET },
    {
      id: 'enterprise', name: 'Acme Corp SSO', kind: 'oidc', issuer: enterprise.issuer, client_id: clientId,
      client_secret: CLIENT_SECRET, email_domains: [ENTERPRISE_DOMAIN],
    },
  ];
}

/**
 * Both providers, the origin and one gateway whose tenant lists both
 * connections. `connections(fed)` may return another list; `vars` are more
 * Spin variables; `idpEnv.social` / `idpEnv.enterprise` more provider env.
 * `github: true` also starts the GitHub-compatible server (tests/lib/github.mjs)
 * as `fed.github`, with every gateway's callback registered, for a
 * `connections` that lists it (githubConnection(fed.github)).
 * (spin.toml allows plain http to all of 127.0.0.0/8, so no manifest of its own.)
 */
export async function startFederation({ connections = connectionsFor, vars = {}, idpEnv = {}, tenantName = TENANT_NAME, gateways = 1, github = false } = {}) {
  const ports = [];
  for (let i = 0; i < gateways; i++) ports.push(await freePort('127.0.0.1'));
  const gatewayUrls = ports.map((p) => `http://127.0.0.1:${p}`);
  const fed = { ports, gateways: [] };
  fed.stop = async () => {
    await Promise.all([
      ...fed.gateways.map((g) => g.stop()), fed.social?.stop(), fed.enterprise?.stop(), fed.origin?.stop(), fed.github?.stop(),
    ]);
  };
  try {
    // allSettled: whatever started is stopped by fed.stop() when another fails
    // (a live child keeps the test file's process from ending).
    const settled = await Promise.allSettled([
      startIdp({
        gatewayUrls,
        env: { IDP_NAME: 'Social IdP', IDP_CALLBACK_PATHS: `${callbackPath('social')},${callbackPath(null)}`, ...idpEnv.social },
      }),
      startIdp({
        gatewayUrls,
        env: {
          IDP_HOST: '127.0.0.3', IDP_PORT: String(await freePort('127.0.0.3')), IDP_NAME: 'Acme Corp SSO',
          IDP_USERS: JSON.stringify(ENTERPRISE_USERS), IDP_ISS_PARAMETER: '0',
          IDP_CALLBACK_PATHS: callbackPath('enterprise'), ...idpEnv.enterprise,
        },
      }),
      startOrigin(),
      // GitHub accepts redirect URIs below the registered callback URL, so
      // /.edgeauth/callback covers /.edgeauth/callback/github.
      github ? startGithub({ callbackUrls: gatewayUrls.map((u) => `${u}/.edgeauth/callback`) }) : undefined,
    ]);
    [fed.social, fed.enterprise, fed.origin, fed.github] = settled.map((r) => r.value);
    for (const r of settled) if (r.status === 'rejected') throw r.reason;
    fed.connections = connections(fed);
    let next = 0;
    fed.startGateway = async (opts = {}) => {
      if (next >= ports.length) throw new Error('startFederation: no gateway port left; raise `gateways`');
      const gw = await startGateway({
        port: ports[next++], originUrl: fed.origin.url, issuer: fed.social.issuer,
        ...opts,
        vars: { connections: JSON.stringify(fed.connections), name: tenantName, ...vars, ...opts.vars },
      });
      fed.gateways.push(gw);
      return gw;
    };
    fed.gateway = await fed.startGateway();
  } catch (e) {
    await fed.stop();
    throw e;
  }
  return fed;
}

// ---------------------------------------------------------------- the chooser, read like a person would
const unescape = (s) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&');

/**
 * What a chooser page offers: heading, the connection buttons (id from the
 * form's hidden input, the button's visible text), the `rd` of every form,
 * the notice and whether there is an email field.
 */
export function readChooser(html) {
  const h1 = html.match(/<h1[^>]*>([\s\S]*?)<\/h1>/);
  const forms = [...html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/g)].map((m) => ({ attrs: m[1], body: m[2] }));
  const hiddenOf = (body, name) => {
    const m = body.match(new RegExp(`<input type="hidden" name="${name}" value="([^"]*)">`));
    return m ? unescape(m[1]) : null;
  };
  const buttons = forms.filter((f) => hiddenOf(f.body, 'connection') !== null).map((f) => ({
    id: hiddenOf(f.body, 'connection'),
    label: unescape((f.body.match(/<button\b[^>]*>([\s\S]*?)<\/button>/)?.[1] ?? '').replace(/<span[^>]*aria-hidden="true"[^>]*>[\s\S]*?<\/span>/g, '').replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim()),
    method: f.attrs.match(/method="([^"]*)"/)?.[1],
    action: f.attrs.match(/action="([^"]*)"/)?.[1],
  }));
  const notice = html.match(/<p class="notice"[^>]*>([\s\S]*?)<\/p>/);
  return {
    heading: h1 ? unescape(h1[1].replace(/<[^>]+>/g, '')) : null,
    buttons,
    rds: forms.map((f) => hiddenOf(f.body, 'rd')),
    notice: notice ? unescape(notice[1]) : null,
    emailField: /<input id="email" name="email"/.test(html),
  };
}

/** `/.edgeauth/login` with these query parameters, on gateway `gw`. */
export function loginUrl(gw, params = {}) {
  const u = new URL('/.edgeauth/login', gw.url);
  for (const [k, v] of Object.entries(params)) if (v !== undefined) u.searchParams.set(k, v);
  return u.href;
}

/**
 * From a login URL to the IdP and back to the gateway's callback (not
 * followed): `{ start, authorize, walk, callbackUrl }`. `idp` is the provider
 * the login must go to.
 */
export async function toCallback(jar, url, idp, { username = 'alice', password = `${username}-pw` } = {}) {
  const start = await request(url, { jar });
  assert.equal(start.status, 302, `GET ${url}: expected a redirect to ${idp.issuer}\n${start.status} ${start.body.slice(0, 400)}`);
  const authorize = new URL(start.location);
  assert.equal(authorize.origin, new URL(idp.issuer).origin, `GET ${url} must go to ${idp.issuer}, went to ${start.location}`);
  const walk = await walkIdp(jar, authorize.href, { username, password });
  assert.ok(walk.location, `the IdP did not redirect back (${walk.loginError || ''})\n${walk.hops.join('\n')}`);
  return { start, authorize, walk, callbackUrl: new URL(walk.location) };
}

/** Sign in with connection `id` (through `?connection=`); returns the callback's response. */
export async function signInWith(fed, jar, id, { gw = fed.gateway, rd = '/', username, password } = {}) {
  const idp = id === 'enterprise' ? fed.enterprise : fed.social;
  const flow = await toCallback(jar, loginUrl(gw, { connection: id, rd }), idp, { username, password });
  const callback = await request(flow.callbackUrl.href, { jar });
  return { ...flow, callback };
}

