// Dev OpenID Provider for edgeauth tests and the demo (node-oidc-provider 9.x).
//
// Own login/consent interactions: the password really is checked, so negative
// tests (wrong password, cancelled sign-in) are possible.
//
// Environment:
//   IDP_HOST            bind address (default 127.0.0.2; must be in 127.0.0.0/8)
//   IDP_PORT            port (default 9400; 0 = pick a free one, printed on start)
//   IDP_ISSUER          issuer URL (default http://IDP_HOST:PORT)
//   GATEWAY_URL         gateway public URL(s), comma separated (default http://127.0.0.1:3000);
//                       each gets `${url}/.edgeauth/callback` as redirect URI and
//                       `${url}/.edgeauth/logged-out` as post-logout redirect URI
//   IDP_SKIP_CONSENT    1 (default) = consent is given automatically; 0 = consent page
//   IDP_KEYS_FILE       JSON file with the private JWKS; created if missing
//   IDP_ID_TOKEN_TTL, IDP_ACCESS_TOKEN_TTL, IDP_SESSION_TTL   seconds
//   IDP_NAME            what the login page calls this IdP (default "edgeauth dev IdP")
//   IDP_VERBOSE         1 = log every request to stderr
//   IDP_EXTRA_USERS     JSON {"name": {"password": "...", "claims": {...}}} added to the users
//                       below (claims are sent as given, e.g. odd emails or groups shapes)
//   IDP_USERS           JSON of the same shape replacing the users below (a second IdP with
//                       its own people, e.g. an "enterprise" one next to a "social" one)
//   IDP_BACKCHANNEL_LOGOUT_URI  the clients' backchannel_logout_uri (OIDC Back-Channel Logout on)
//   IDP_REFRESH_TOKENS  1 = refresh tokens for every sign-in of a client allowed the grant,
//                       rotated at every use (a reused one revokes the whole grant)
//   IDP_TEST_HOOKS      1 = /_test/ endpoints for tests: POST /_test/disable?user=U and
//                       /_test/enable?user=U (an account the provider no longer finds),
//                       POST /_test/token-down?on=1|0 (the token endpoint answers 503),
//                       GET /_test/stats (refresh grants served, reuses refused)
//   IDP_CALLBACK_PATHS  comma separated callback paths registered for each gateway URL
//                       (default /.edgeauth/callback; a connection's is /.edgeauth/callback/<id>)
//   IDP_ISS_PARAMETER   1 (default) = authorization responses carry `iss` and discovery says
//                       so (RFC 9207, always on in node-oidc-provider 9); 0 = neither, like
//                       providers that predate RFC 9207
//
// Clients (secret edgeauth-dev-secret for all):
//   edgeauth         client_secret_basic, RS256 id tokens
//   edgeauth-es256   client_secret_post,  ES256 id tokens
//   (node-oidc-provider accepts client_secret_basic and _post interchangeably)
//   edgeauth-eddsa   client_secret_basic, EdDSA (Ed25519) id tokens
//
// Users: alice / alice-pw (email verified, groups admins, devs)
//        bob   / bob-pw   (email NOT verified, groups users)

import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { Provider } from 'oidc-provider';

const env = process.env;
const HOST = env.IDP_HOST || '127.0.0.2';
const PORT = Number(env.IDP_PORT ?? 9400);
const SKIP_CONSENT = (env.IDP_SKIP_CONSENT ?? '1') !== '0';
const VERBOSE = env.IDP_VERBOSE === '1';
const GATEWAY_URLS = (env.GATEWAY_URL || 'http://127.0.0.1:3000')
  .split(',').map((s) => s.trim().replace(/\/+$/, '')).filter(Boolean);
const CALLBACK_PATHS = (env.IDP_CALLBACK_PATHS || '/.edgeauth/callback')
  .split(',').map((s) => s.trim()).filter(Boolean);
const ISS_PARAMETER = (env.IDP_ISS_PARAMETER ?? '1') !== '0';
const IDP_NAME = env.IDP_NAME || 'edgeauth dev IdP';
const SECRET = 'edgeauth-dev-secret';

if (!HOST.startsWith('127.')) {
  console.error(`IDP_HOST must be a loopback address in 127.0.0.0/8, got ${HOST}`);
  process.exit(2);
}

// ---------------------------------------------------------------- users
const DEFAULT_USERS = {
  alice: {
    password: 'alice-pw',
    claims: {
      email: 'alice@example.com', email_verified: true,
      name: 'Alice Example', given_name: 'Alice', family_name: 'Example',
      preferred_username: 'alice', groups: ['admins', 'devs'],
    },
  },
  bob: {
    password: 'bob-pw',
    claims: {
      email: 'bob@example.com', email_verified: false,
      name: 'Bob Example', given_name: 'Bob', family_name: 'Example',
      preferred_username: 'bob', groups: ['users'],
    },
  },
};

const USERS = env.IDP_USERS ? JSON.parse(env.IDP_USERS) : DEFAULT_USERS;

if (env.IDP_EXTRA_USERS) {
  for (const [name, user] of Object.entries(JSON.parse(env.IDP_EXTRA_USERS))) {
    if (Object.hasOwn(USERS, name)) throw new Error(`IDP_EXTRA_USERS: ${name} already exists`);
    USERS[name] = user;
  }
}

// Test hooks (IDP_TEST_HOOKS=1): accounts switched off, an unavailable
// token endpoint, and what the token endpoint served.
const DISABLED = new Set();
let tokenDown = false;
const stats = { refresh_grants: 0, refresh_failures: 0 };

async function findAccount(ctx, id) {
  if (DISABLED.has(id)) return undefined;
  const user = USERS[id];
  if (!user) return undefined;
  return { accountId: id, claims: async () => ({ sub: id, ...user.claims }) };
}

function checkPassword(username, password) {
  const user = Object.hasOwn(USERS, username) ? USERS[username] : undefined;
  const want = Buffer.from(user ? user.password : 'x-no-such-user-x');
  const got = Buffer.from(String(password ?? ''));
  const same = want.length === got.length && crypto.timingSafeEqual(want, got);
  return user && same ? username : undefined;
}

// ---------------------------------------------------------------- keys
function generateKeys() {
  const jwk = (kp, extra) => ({ ...kp.privateKey.export({ format: 'jwk' }), use: 'sig', ...extra });
  return {
    keys: [
      jwk(crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }), { kid: 'rsa-1', alg: 'RS256' }),
      jwk(crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }), { kid: 'ec-1', alg: 'ES256' }),
      jwk(crypto.generateKeyPairSync('ed25519'), { kid: 'ed-1', alg: 'EdDSA' }),
    ],
  };
}

function loadKeys() {
  const file = env.IDP_KEYS_FILE;
  if (!file) return generateKeys();
  if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8'));
  const jwks = generateKeys();
  fs.writeFileSync(file, JSON.stringify(jwks, null, 2), { mode: 0o600 });
  return jwks;
}

// ---------------------------------------------------------------- html
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
const STYLE = `body{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0}
main{max-width:340px;margin:60px auto;background:#fff;padding:24px 32px;border-radius:6px;box-shadow:0 1px 4px rgba(0,0,0,.2)}
h1{font-size:1.3em;font-weight:500}label{display:block;margin:12px 0 4px}
input{width:100%;box-sizing:border-box;padding:8px;font-size:1em}
button{margin-top:16px;width:100%;padding:10px;font-size:1em;background:#2f6fde;color:#fff;border:0;border-radius:4px;cursor:pointer}
#error{color:#b00020}.muted{color:#666;font-size:.9em}a{color:#2f6fde}`;
const page = (title, body) => `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>${esc(title)}</title>
<style>${STYLE}</style></head><body><main>${body}</main></body></html>`;

function loginPage(uid, { clientId, error, username = '' }) {
  return page('Sign in – edgeauth dev IdP', `
<h1>Sign in</h1>
<p class="muted">to <strong>${esc(clientId)}</strong> at the <span id="idp-name">${esc(IDP_NAME)}</span></p>
${error ? `<p id="error" role="alert">${esc(error)}</p>` : ''}
<form id="login" method="post" action="/interaction/${esc(uid)}/login" autocomplete="off">
  <label for="username">Username</label>
  <input id="username" name="username" value="${esc(username)}" required autofocus>
  <label for="password">Password</label>
  <input id="password" name="password" type="password" required>
  <button id="submit" type="submit">Sign in</button>
</form>
<p><a id="abort" href="/interaction/${esc(uid)}/abort">Cancel sign-in</a></p>
<p class="muted">${env.IDP_USERS ? `Test users: ${esc(Object.keys(USERS).join(', '))}` : 'Test users: alice / alice-pw, bob / bob-pw'}</p>`);
}

function consentPage(uid, { clientId, scopes }) {
  return page('Allow access – edgeauth dev IdP', `
<h1>Allow access</h1>
<p><strong>${esc(clientId)}</strong> asks for:</p>
<ul id="scopes">${scopes.map((s) => `<li>${esc(s)}</li>`).join('')}</ul>
<form id="consent" method="post" action="/interaction/${esc(uid)}/confirm">
  <button id="allow" type="submit">Allow</button>
</form>
<p><a id="deny" href="/interaction/${esc(uid)}/abort">Deny</a></p>`);
}

// ---------------------------------------------------------------- provider
const server = http.createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(PORT, HOST, resolve);
});
const port = server.address().port;
const ISSUER = env.IDP_ISSUER || `http://${HOST}:${port}`;

const clientBase = {
  client_secret: SECRET,
  redirect_uris: GATEWAY_URLS.flatMap((u) => CALLBACK_PATHS.map((p) => `${u}${p}`)),
  post_logout_redirect_uris: GATEWAY_URLS.map((u) => `${u}/.edgeauth/logged-out`),
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  // OIDC Back-Channel Logout: the provider POSTs a logout token here when
  // the person's session at the provider ends.
  ...(env.IDP_BACKCHANNEL_LOGOUT_URI ? {
    backchannel_logout_uri: env.IDP_BACKCHANNEL_LOGOUT_URI,
    backchannel_logout_session_required: true,
  } : {}),
};

const ALL_SCOPES = ['openid', 'email', 'profile', 'groups', 'offline_access'];
const CLAIMS = {
  openid: ['sub'],
  email: ['email', 'email_verified'],
  profile: ['name', 'given_name', 'family_name', 'preferred_username', 'groups'],
  groups: ['groups'],
};

const ttlOr = (v, d) => (v ? Number(v) : d);

const configuration = {
  clients: [
    { ...clientBase, client_id: 'edgeauth', client_name: 'edgeauth gateway',
      token_endpoint_auth_method: 'client_secret_basic', id_token_signed_response_alg: 'RS256' },
    { ...clientBase, client_id: 'edgeauth-es256', client_name: 'edgeauth gateway (ES256)',
      token_endpoint_auth_method: 'client_secret_post', id_token_signed_response_alg: 'ES256' },
    { ...clientBase, client_id: 'edgeauth-eddsa', client_name: 'edgeauth gateway (EdDSA)',
      token_endpoint_auth_method: 'client_secret_basic', id_token_signed_response_alg: 'EdDSA' },
  ],
  findAccount,
  jwks: loadKeys(),
  scopes: ALL_SCOPES,
  claims: CLAIMS,
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  responseTypes: ['code'],
  enabledJWA: { idTokenSigningAlgValues: ['RS256', 'ES256', 'EdDSA'] },
  // The provider's outgoing requests (back-channel logout) refuse loopback
  // and other special-use addresses by default; the test gateways are on
  // 127.0.0.1, so this dev provider lets them through (its own dispatcher).
  fetch: (url, options) => {
    const { dispatcher, ...rest } = options;
    void dispatcher;
    return globalThis.fetch(url, rest);
  },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  ttl: {
    IdToken: ttlOr(env.IDP_ID_TOKEN_TTL, 3600),
    AccessToken: ttlOr(env.IDP_ACCESS_TOKEN_TTL, 3600),
    Session: ttlOr(env.IDP_SESSION_TTL, 14 * 24 * 3600),
    Grant: ttlOr(env.IDP_SESSION_TTL, 14 * 24 * 3600),
    Interaction: 3600,
    AuthorizationCode: 60,
    RefreshToken: 14 * 24 * 3600,
  },
  features: {
    devInteractions: { enabled: false },
    revocation: { enabled: true },
    backchannelLogout: { enabled: Boolean(env.IDP_BACKCHANNEL_LOGOUT_URI) },
    introspection: { enabled: true },
    rpInitiatedLogout: {
      enabled: true,
      async logoutSource(ctx, form) {
        ctx.body = page('Sign out – edgeauth dev IdP', `
<h1>Sign out from the edgeauth dev IdP?</h1>
${form}
<button id="logout-yes" autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
<button id="logout-no" type="submit" form="op.logoutForm" style="background:#888">No, stay signed in</button>`);
      },
      async postLogoutSuccessSource(ctx) {
        ctx.body = page('Signed out – edgeauth dev IdP', '<h1 id="signed-out">You are signed out.</h1>');
      },
    },
  },
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('Error – edgeauth dev IdP', `<h1>Something went wrong</h1>
<pre id="oidc-error">${Object.entries(out).map(([k, v]) => `${esc(k)}: ${esc(v)}`).join('\n')}</pre>`);
  },
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    if (!SKIP_CONSENT) return undefined;
    // First-party dev clients: consent to everything, no consent page.
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope(ALL_SCOPES.join(' '));
    grant.addOIDCClaims([...new Set(Object.values(CLAIMS).flat())]);
    await grant.save();
    return grant;
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  ...(env.IDP_REFRESH_TOKENS === '1' ? {
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: true,
  } : {}),
};

const provider = new Provider(ISSUER, configuration);
if (!ISS_PARAMETER) {
  // A provider without RFC 9207: no `iss` on the way back to the client,
  // and discovery does not claim it.
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.oidc?.route === 'discovery' && ctx.body) {
      delete ctx.body.authorization_response_iss_parameter_supported;
    }
    const location = ctx.response.get('location');
    if (location && GATEWAY_URLS.some((u) => location.startsWith(`${u}/`))) {
      const url = new URL(location);
      if (url.searchParams.has('iss')) {
        url.searchParams.delete('iss');
        ctx.response.set('location', url.href);
      }
    }
  });
}
provider.on('server_error', (ctx, err) => console.error('idp server_error:', err));
// Back-channel logout deliveries, for the test logs.
provider.on('backchannel.error', (...args) => {
  const err = args.find((a) => a instanceof Error);
  console.error(`idp backchannel logout failed: ${err?.message} ${err?.cause?.message ?? ''}`);
});
provider.on('backchannel.success', () => console.log('idp backchannel logout delivered'));
provider.on('grant.success', (ctx) => {
  if (ctx.oidc.params?.grant_type === 'refresh_token') stats.refresh_grants += 1;
});
provider.on('grant.error', (ctx) => {
  if (ctx.oidc.params?.grant_type === 'refresh_token') stats.refresh_failures += 1;
});
const oidc = provider.callback();

function testHook(req, res) {
  const url = new URL(req.url, ISSUER);
  const user = url.searchParams.get('user');
  const json = (status, body) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  if (req.method === 'GET' && url.pathname === '/_test/stats') return json(200, stats);
  if (req.method !== 'POST') return json(405, { error: 'POST' });
  if (url.pathname === '/_test/disable' && user) { DISABLED.add(user); return json(200, { disabled: user }); }
  if (url.pathname === '/_test/enable' && user) { DISABLED.delete(user); return json(200, { enabled: user }); }
  if (url.pathname === '/_test/token-down') {
    tokenDown = url.searchParams.get('on') === '1';
    return json(200, { tokenDown });
  }
  return json(404, { error: 'no such hook' });
}

// ---------------------------------------------------------------- interactions
function readForm(req, limit = 64 * 1024) {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks = [];
    req.on('data', (c) => {
      size += c.length;
      if (size > limit) { reject(new Error('body too large')); req.destroy(); return; }
      chunks.push(c);
    });
    req.on('end', () => resolve(new URLSearchParams(Buffer.concat(chunks).toString('utf8'))));
    req.on('error', reject);
  });
}

function send(res, status, html) {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'x-frame-options': 'DENY',
  });
  res.end(html);
}

async function interactions(req, res) {
  const url = new URL(req.url, ISSUER);
  const m = url.pathname.match(/^\/interaction\/([^/]+)(?:\/(login|confirm|abort))?$/);
  if (!m) return send(res, 404, page('Not found', '<h1>Not found</h1>'));
  const action = m[2];
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    return send(res, 400, page('Sign-in expired', `<h1>This sign-in request has expired or is invalid</h1><p id="error">${esc(err.message)}</p>`));
  }
  const { uid, prompt, params } = details;
  if (uid !== m[1]) return send(res, 400, page('Bad request', '<h1>Interaction mismatch</h1>'));
  const clientId = params.client_id;

  if (!action && req.method === 'GET') {
    if (prompt.name === 'login') return send(res, 200, loginPage(uid, { clientId }));
    if (prompt.name === 'consent') {
      return send(res, 200, consentPage(uid, { clientId, scopes: String(params.scope || '').split(' ') }));
    }
    return send(res, 400, page('Bad request', `<h1>Unknown prompt ${esc(prompt.name)}</h1>`));
  }

  if (action === 'login' && req.method === 'POST') {
    if (prompt.name !== 'login') return send(res, 400, page('Bad request', '<h1>Not a login prompt</h1>'));
    const form = await readForm(req);
    const username = form.get('username') || '';
    const accountId = checkPassword(username, form.get('password'));
    if (!accountId) {
      return send(res, 200, loginPage(uid, { clientId, error: 'Invalid username or password', username }));
    }
    return provider.interactionFinished(req, res, { login: { accountId } }, { mergeWithLastSubmission: false });
  }

  if (action === 'confirm' && req.method === 'POST') {
    if (prompt.name !== 'consent') return send(res, 400, page('Bad request', '<h1>Not a consent prompt</h1>'));
    const { details: missing } = prompt;
    const accountId = details.session.accountId;
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId, clientId });
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    if (missing.missingResourceScopes) {
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes)) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
    }
    const grantId = await grant.save();
    const consent = details.grantId ? {} : { grantId };
    return provider.interactionFinished(req, res, { consent }, { mergeWithLastSubmission: true });
  }

  if (action === 'abort' && (req.method === 'GET' || req.method === 'POST')) {
    return provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
  }

  return send(res, 405, page('Method not allowed', '<h1>Method not allowed</h1>'));
}

server.on('request', (req, res) => {
  if (VERBOSE) console.error(`idp: ${req.method} ${req.url}`);
  if (env.IDP_TEST_HOOKS === '1' && req.url.startsWith('/_test/')) {
    testHook(req, res);
    return;
  }
  if (tokenDown && req.url.startsWith('/token')) {
    res.writeHead(503, { 'content-type': 'text/plain' });
    res.end('down for the test');
    return;
  }
  if (req.url.startsWith('/interaction/')) {
    interactions(req, res).catch((err) => {
      console.error('idp interaction error:', err);
      if (!res.headersSent) send(res, 500, page('Error', '<h1>Internal error</h1>'));
      else res.end();
    });
    return;
  }
  oidc(req, res);
});

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => { server.close(); process.exit(0); });
}

console.log(`idp listening on http://${HOST}:${port}`);
console.log(`idp issuer ${ISSUER}; clients edgeauth, edgeauth-es256, edgeauth-eddsa; redirect ${clientBase.redirect_uris.join(', ')}`);
