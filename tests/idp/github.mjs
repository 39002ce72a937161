// A GitHub-compatible OAuth2 server for tests, written from GitHub's published
// API shapes (nothing of GitHub's is copied; it is what GitHub's docs say a
// client sees):
//   "Authorizing OAuth apps", Web application flow
//     https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps
//   PKCE (S256 only), changelog 2025-07-14
//     https://github.blog/changelog/2025-07-14-pkce-support-for-oauth-and-github-app-authentication
//   "Troubleshooting OAuth app access token request errors" (errors with HTTP 200)
//   REST "Get the authenticated user" (GET /user) and
//   "List email addresses for the authenticated user" (GET /user/emails)
//   REST "Getting started": User-Agent required (403 without), API version header.
//
// One process serves both of GitHub's hosts: the OAuth endpoints
// (/login/oauth/authorize, /login/oauth/access_token) and the REST API
// (/user, /user/emails).
//
// Environment:
//   GH_HOST            bind address (default 127.0.0.2; must be in 127.0.0.0/8)
//   GH_PORT            port (0 = any free one; printed on start)
//   GH_CLIENT_ID       the OAuth app's client id (default Iv1.edgeauth-test)
//   GH_CLIENT_SECRET   its secret (default github-test-secret)
//   GH_CALLBACK_URLS   comma-separated registered callback URLs. As GitHub
//                      documents ("Redirect URLs"): a redirect_uri must have the
//                      same host and port, and its path must be the callback's
//                      path or below it.
//
// Users (the sign-in page offers each as a button, id `user-<key>`):
//   octo   id 583231   login octocat  public email null; verified primary octocat@example.com
//                      (and a verified secondary)
//   mona   id 1000002  login mona     name null; public email mona@public.example which is her
//                      primary but NOT verified; her only verified address is not primary
//   hubot  id 1000003  login hubot    no verified address at all
//
// Test controls under /__test/ (JSON bodies):
//   GET  /__test/requests            every request seen: method, path, headers (lower-case)
//   POST /__test/reset               forget requests, failures, renames
//   POST /__test/fail  {path, status?, error?, times?}   the next `times` (1) requests to
//                      `path` answer `status` with GitHub's message, or for the token
//                      endpoint HTTP 200 with `error` (as GitHub does)
//   POST /__test/login {user, login} rename a user's login (the id stays)
//   POST /__test/token-format {format}  `form` answers token requests form-encoded
//                      whatever the Accept header says; `auto` (default) follows it

import http from 'node:http';
import crypto from 'node:crypto';

const env = process.env;
const HOST = env.GH_HOST || '127.0.0.2';
const PORT = Number(env.GH_PORT ?? 0);
const CLIENT_ID = env.GH_CLIENT_ID || 'Iv1.edgeauth-test';
const CLIENT_SECRET = env.GH_CLIENT_SECRET || 'github-test-secret';
const CALLBACKS = (env.GH_CALLBACK_URLS || '').split(',').map((s) => s.trim()).filter(Boolean);
const CODE_TTL_MS = 10 * 60 * 1000; // "The temporary code will expire after 10 minutes."
const API_VERSIONS = new Set(['2022-11-28', '2026-03-10']);
const DOCS = 'https://docs.github.com/rest';

if (!HOST.startsWith('127.')) {
  console.error(`GH_HOST must be a loopback address in 127.0.0.0/8, got ${HOST}`);
  process.exit(2);
}

const USERS = {
  octo: {
    id: 583231, login: 'octocat', name: 'The Octocat', email: null,
    emails: [
      { email: 'octo-old@example.org', primary: false, verified: true, visibility: null },
      { email: 'octocat@example.com', primary: true, verified: true, visibility: 'private' },
    ],
  },
  mona: {
    id: 1000002, login: 'mona', name: null, email: 'mona@public.example',
    emails: [
      { email: 'mona@public.example', primary: true, verified: false, visibility: 'public' },
      { email: 'mona@work.example', primary: false, verified: true, visibility: null },
    ],
  },
  hubot: {
    id: 1000003, login: 'hubot', name: 'Hubot', email: null,
    emails: [{ email: 'hubot@unverified.example', primary: true, verified: false, visibility: 'private' }],
  },
};
const initialLogins = Object.fromEntries(Object.entries(USERS).map(([k, u]) => [k, u.login]));

const pending = new Map(); // request id -> authorization request awaiting the person's choice
const codes = new Map(); // code -> { user, redirectUri, challenge, scopes, expires, used }
const tokens = new Map(); // access token -> { user, scopes }
let seen = [];
let failures = [];
let tokenFormat = 'auto';

const random = (n) => crypto.randomBytes(n).toString('hex');
const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function send(res, status, type, body, headers = {}) {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', ...headers });
  res.end(body);
}
const json = (res, status, v, headers) => send(res, status, 'application/json; charset=utf-8', JSON.stringify(v), headers);
const page = (res, status, title, inner) => send(res, status, 'text/html; charset=utf-8',
  `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title>
<style>body{font:16px system-ui,sans-serif;max-width:28rem;margin:3rem auto;color:#1f2328}
button{display:block;width:100%;margin:.5rem 0;padding:.7rem;font-size:1rem;border:1px solid #d0d7de;border-radius:6px;background:#f6f8fa;cursor:pointer}
button.primary{background:#1f883d;color:#fff;border-color:#1f883d}</style></head>
<body><h1>${escape(title)}</h1>${inner}</body></html>`);

async function readBody(req, limit = 64 * 1024) {
  const chunks = [];
  let n = 0;
  for await (const c of req) {
    n += c.length;
    if (n > limit) throw new Error('body too large');
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Form or JSON body parameters (GitHub accepts both on the token endpoint). */
function params(req, raw) {
  if ((req.headers['content-type'] || '').includes('application/json')) {
    try { return new Map(Object.entries(JSON.parse(raw)).map(([k, v]) => [k, String(v)])); } catch { return new Map(); }
  }
  return new Map(new URLSearchParams(raw));
}

/** GitHub's rule for redirect_uri against the registered callback URL. */
function redirectAllowed(uri) {
  let u;
  try { u = new URL(uri); } catch { return false; }
  return CALLBACKS.some((cb) => {
    const c = new URL(cb);
    if (u.protocol !== c.protocol || u.host !== c.host) return false;
    const base = c.pathname.replace(/\/+$/, '');
    return u.pathname === c.pathname || u.pathname === base || u.pathname.startsWith(`${base}/`);
  }) && !u.hash;
}

function takeFailure(path) {
  const f = failures.find((x) => x.path === path && x.times > 0);
  if (!f) return null;
  f.times -= 1;
  return f;
}

/** Token endpoint answer in the format the Accept header asks for. */
function tokenAnswer(req, res, fields) {
  const accept = String(req.headers.accept || '');
  if (tokenFormat !== 'form' && accept.includes('application/json')) return json(res, 200, fields);
  if (tokenFormat !== 'form' && accept.includes('application/xml')) {
    const xml = Object.entries(fields).map(([k, v]) => `<${k}>${escape(v)}</${k}>`).join('');
    return send(res, 200, 'application/xml; charset=utf-8', `<OAuth>${xml}</OAuth>`);
  }
  return send(res, 200, 'application/x-www-form-urlencoded; charset=utf-8', new URLSearchParams(fields).toString());
}

const tokenError = (req, res, error, description) => tokenAnswer(req, res, {
  error, error_description: description,
  error_uri: `https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#${error.replaceAll('_', '-')}`,
});

function authorizePage(req, res, url) {
  const q = url.searchParams;
  if (q.get('client_id') !== CLIENT_ID) return page(res, 404, 'Not Found', '<p>No OAuth app has this client id.</p>');
  const redirectUri = q.get('redirect_uri') || CALLBACKS[0];
  if (!redirectAllowed(redirectUri)) {
    return page(res, 400, 'Redirect URI mismatch', '<p id="error">The redirect_uri is not associated with this application.</p>');
  }
  const challenge = q.get('code_challenge');
  const method = q.get('code_challenge_method');
  if (challenge !== null && (method !== 'S256' || !/^[A-Za-z0-9_-]{43}$/.test(challenge))) {
    // Only S256 is accepted (changelog 2025-07-14).
    return page(res, 400, 'Invalid PKCE parameters', '<p id="error">Only the S256 code challenge method is supported.</p>');
  }
  const id = random(12);
  pending.set(id, {
    redirectUri, state: q.get('state'), challenge,
    scopes: (q.get('scope') || '').split(/[\s,]+/).filter(Boolean),
    expires: Date.now() + CODE_TTL_MS,
  });
  const buttons = Object.entries(USERS).map(([key, u]) =>
    `<button type="submit" class="primary" name="user" value="${key}" id="user-${key}">Continue as ${escape(u.login)}</button>`).join('');
  return page(res, 200, 'Sign in to GitHub (test)', `
<p>Authorize <strong>${escape(CLIENT_ID)}</strong> to read your profile and email addresses.</p>
<form method="post" action="/login/oauth/authorize">
<input type="hidden" name="request" value="${id}">${buttons}
<button type="submit" name="cancel" value="1" id="cancel">Cancel</button>
</form>`);
}

async function authorizeDecision(req, res) {
  const p = new URLSearchParams(await readBody(req));
  const ar = pending.get(p.get('request') || '');
  if (!ar || ar.expires < Date.now()) return page(res, 400, 'Expired', '<p id="error">This authorization request expired.</p>');
  pending.delete(p.get('request'));
  const back = new URL(ar.redirectUri);
  if (p.get('cancel')) {
    back.searchParams.set('error', 'access_denied');
    back.searchParams.set('error_description', 'The user has denied your application access.');
  } else {
    const user = p.get('user');
    if (!USERS[user]) return page(res, 400, 'Unknown user', '<p id="error">No such user.</p>');
    const code = random(10); // GitHub's codes are 20 hex digits
    codes.set(code, { user, redirectUri: ar.redirectUri, challenge: ar.challenge, scopes: ar.scopes, expires: Date.now() + CODE_TTL_MS, used: false });
    back.searchParams.set('code', code);
  }
  if (ar.state !== null) back.searchParams.set('state', ar.state);
  res.writeHead(302, { location: back.href, 'cache-control': 'no-store' });
  res.end();
}

async function accessToken(req, res) {
  const p = params(req, await readBody(req));
  const forced = takeFailure('/login/oauth/access_token');
  if (forced?.status) return send(res, forced.status, 'text/html', '<html>Unicorn!</html>');
  if (forced?.error) return tokenError(req, res, forced.error, 'Forced by the test.');
  // Client credentials: in the body (the documented way) or HTTP Basic.
  let id = p.get('client_id');
  let secret = p.get('client_secret');
  const basic = /^Basic (.+)$/i.exec(req.headers.authorization || '');
  if (basic) [id, secret] = Buffer.from(basic[1], 'base64').toString().split(':').map(decodeURIComponent);
  if (id !== CLIENT_ID || secret !== CLIENT_SECRET) {
    return tokenError(req, res, 'incorrect_client_credentials', 'The client_id and/or client_secret passed are incorrect.');
  }
  const code = codes.get(p.get('code') || '');
  if (!code || code.used || code.expires < Date.now()) {
    return tokenError(req, res, 'bad_verification_code', 'The code passed is incorrect or expired.');
  }
  code.used = true; // single use, whatever happens next
  if (p.has('redirect_uri') && p.get('redirect_uri') !== code.redirectUri) {
    return tokenError(req, res, 'redirect_uri_mismatch', 'The redirect_uri MUST match the registered callback URL for this application.');
  }
  if (code.challenge) {
    const verifier = p.get('code_verifier') || '';
    const ok = /^[A-Za-z0-9._~-]{43,128}$/.test(verifier)
      && crypto.createHash('sha256').update(verifier).digest('base64url') === code.challenge;
    if (!ok) return tokenError(req, res, 'bad_verification_code', 'The code passed is incorrect or expired.');
  }
  const token = `gho_${crypto.randomBytes(18).toString('base64url').replace(/[-_]/g, 'x')}`;
  tokens.set(token, { user: code.user, scopes: code.scopes });
  return tokenAnswer(req, res, { access_token: token, scope: code.scopes.join(','), token_type: 'bearer' });
}

/** The REST API's checks, in GitHub's order: User-Agent, credentials, media type, version. */
function apiCaller(req, res) {
  if (!req.headers['user-agent']) {
    send(res, 403, 'text/plain; charset=utf-8',
      'Request forbidden by administrative rules. Please make sure your request has a User-Agent header '
      + '(https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required).');
    return null;
  }
  const m = /^(?:Bearer|token) (\S+)$/i.exec(req.headers.authorization || '');
  if (!m) { json(res, 401, { message: 'Requires authentication', documentation_url: DOCS }); return null; }
  const t = tokens.get(m[1]);
  if (!t) { json(res, 401, { message: 'Bad credentials', documentation_url: DOCS }); return null; }
  const accept = String(req.headers.accept || '');
  if (!/application\/(vnd\.github(\.v3)?\+)?json/.test(accept)) {
    json(res, 415, { message: `Unsupported 'Accept' header: ${JSON.stringify(accept)}`, documentation_url: DOCS });
    return null;
  }
  const version = req.headers['x-github-api-version'];
  if (version !== undefined && !API_VERSIONS.has(version)) {
    json(res, 400, { message: `API version ${version} is not supported.`, documentation_url: DOCS });
    return null;
  }
  return t;
}

function api(req, res, url) {
  const t = apiCaller(req, res);
  if (!t) return;
  const forced = takeFailure(url.pathname);
  if (forced) return json(res, forced.status || 500, { message: forced.status === 403 ? 'Forbidden' : 'Server Error', documentation_url: DOCS });
  const u = USERS[t.user];
  const headers = { 'x-oauth-scopes': t.scopes.join(', '), 'x-github-api-version-selected': req.headers['x-github-api-version'] || '2022-11-28' };
  if (url.pathname === '/user') {
    return json(res, 200, {
      login: u.login, id: u.id, node_id: Buffer.from(`04:User${u.id}`).toString('base64'),
      avatar_url: `https://avatars.example/u/${u.id}?v=4`, gravatar_id: '', type: 'User', site_admin: false,
      name: u.name, company: null, blog: '', location: null, email: u.email, hireable: null, bio: null,
      public_repos: 2, followers: 20, following: 0,
      created_at: '2011-01-25T18:44:36Z', updated_at: '2025-01-01T00:00:00Z',
    }, headers);
  }
  // /user/emails needs the user:email (or user) scope; without it GitHub answers 404.
  if (!t.scopes.includes('user:email') && !t.scopes.includes('user')) return json(res, 404, { message: 'Not Found', documentation_url: DOCS });
  const perPage = Math.min(Math.max(Number(url.searchParams.get('per_page') || 30), 1), 100);
  const pageNo = Math.max(Number(url.searchParams.get('page') || 1), 1);
  return json(res, 200, u.emails.slice((pageNo - 1) * perPage, pageNo * perPage), headers);
}

async function control(req, res, url) {
  if (req.method === 'GET' && url.pathname === '/__test/requests') return json(res, 200, seen);
  if (req.method !== 'POST') return json(res, 405, { message: 'POST' });
  const body = JSON.parse((await readBody(req)) || '{}');
  switch (url.pathname) {
    case '/__test/reset':
      seen = []; failures = []; tokenFormat = 'auto';
      for (const [k, login] of Object.entries(initialLogins)) USERS[k].login = login;
      return json(res, 200, { ok: true });
    case '/__test/fail':
      failures.push({ path: body.path, status: body.status, error: body.error, times: body.times ?? 1 });
      return json(res, 200, { ok: true });
    case '/__test/login':
      USERS[body.user].login = body.login;
      return json(res, 200, { ok: true });
    case '/__test/token-format':
      tokenFormat = body.format;
      return json(res, 200, { ok: true });
    default:
      return json(res, 404, { message: 'Not Found' });
  }
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, `http://${req.headers.host || HOST}`);
  try {
    if (url.pathname.startsWith('/__test/')) return await control(req, res, url);
    seen.push({ method: req.method, path: url.pathname, query: url.search, headers: req.headers });
    if (url.pathname === '/login/oauth/authorize' && req.method === 'GET') return authorizePage(req, res, url);
    if (url.pathname === '/login/oauth/authorize' && req.method === 'POST') return await authorizeDecision(req, res);
    if (url.pathname === '/login/oauth/access_token' && req.method === 'POST') return await accessToken(req, res);
    if ((url.pathname === '/user' || url.pathname === '/user/emails') && req.method === 'GET') return api(req, res, url);
    return json(res, 404, { message: 'Not Found', documentation_url: DOCS });
  } catch (e) {
    return json(res, 500, { message: String(e.message || e) });
  }
});

server.listen(PORT, HOST, () => {
  const { port } = server.address();
  console.log(`github listening on http://${HOST}:${port}`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));
