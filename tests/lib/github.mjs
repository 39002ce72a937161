// The GitHub-compatible test server (tests/idp/github.mjs): start it, walk its
// sign-in page as a browser would, and describe it as a tenant's `github`
// connection (the preset with its endpoints pointed at the test server).

import path from 'node:path';
import { ROOT, freePort, startProcess } from './procs.mjs';
import { request } from './http.mjs';

export const GH_CLIENT_ID = 'Iv1.edgeauth-test';
export const GH_CLIENT_SECRET = 'github-test-secret';

/**
 * Start the server. `callbackUrls`: the callback URLs registered for the
 * OAuth app (GitHub matches redirect_uri against them).
 */
export async function startGithub({ callbackUrls, host = '127.0.0.2', port, echo = false } = {}) {
  const p = port ?? await freePort(host);
  const { proc, match } = await startProcess('github', process.execPath, [path.join(ROOT, 'tests/idp/github.mjs')], {
    env: {
      GH_HOST: host, GH_PORT: String(p), GH_CLIENT_ID, GH_CLIENT_SECRET,
      GH_CALLBACK_URLS: callbackUrls.join(','),
    },
    ready: /github listening on (http:\/\/\S+)/,
    timeoutMs: 30000, echo,
  });
  const url = match[1];
  const post = async (p2, body) => {
    const r = await fetch(url + p2, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    if (!r.ok) throw new Error(`github test control ${p2}: ${r.status}`);
  };
  return {
    proc, url, issuer: url, stop: () => proc.stop(),
    /** Every request the server saw (not its test controls). */
    async requests() { return (await fetch(`${url}/__test/requests`)).json(); },
    reset: () => post('/__test/reset', {}),
    /** The next request(s) to `path` fail: {status} or, for the token endpoint, {error} with HTTP 200. */
    fail: (p2, how, times = 1) => post('/__test/fail', { path: p2, ...how, times }),
    rename: (user, login) => post('/__test/login', { user, login }),
    tokenFormat: (format) => post('/__test/token-format', { format }),
  };
}

/** A tenant's connection using the github preset, endpoints on the test server. */
export function githubConnection(gh, { id = 'github', clientSecret = GH_CLIENT_SECRET, ...extra } = {}) {
  return {
    id, kind: 'oauth2', preset: 'github',
    client_id: GH_CLIENT_ID, client_secret: clientSecret,
    authorization_endpoint: `${gh.url}/login/oauth/authorize`,
    token_endpoint: `${gh.url}/login/oauth/access_token`,
    userinfo_endpoint: `${gh.url}/user`,
    emails_endpoint: `${gh.url}/user/emails?per_page=100`,
    ...extra,
  };
}

/**
 * On the server's sign-in page (at `authorizeUrl`), choose `user` (or cancel
 * with user = null) and return where the server redirects the browser.
 */
export async function walkGithub(authorizeUrl, user) {
  const pageRes = await request(authorizeUrl);
  if (pageRes.status !== 200) return { status: pageRes.status, body: pageRes.body };
  const id = /name="request" value="([0-9a-f]+)"/.exec(pageRes.body)?.[1];
  if (!id) throw new Error(`walkGithub: no sign-in form at ${authorizeUrl}\n${pageRes.body.slice(0, 300)}`);
  const form = new URLSearchParams({ request: id, ...(user ? { user } : { cancel: '1' }) });
  const r = await request(new URL('/login/oauth/authorize', authorizeUrl).href, {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString(),
  });
  return { status: r.status, location: r.location, body: r.body };
}
