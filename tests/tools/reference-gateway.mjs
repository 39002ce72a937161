#!/usr/bin/env node
// Reference implementation of the gateway contract in tests/README.md, in Node.
// It is NOT the product: it exists so the e2e suite itself can be checked
// (the tests must pass against a correct gateway and fail against a broken
// one). It takes the same command line and SPIN_VARIABLE_* settings as the
// real host:  reference-gateway.mjs up --listen 127.0.0.1:PORT [ignored flags]
//   EDGEAUTH_HOST_BIN=tests/tools/reference-gateway.mjs EDGEAUTH_SKIP_BUILD=1 scripts/test
// REFGW_BUG=<name> switches on one deliberate defect (see BUGS below) to show
// that the tests catch it.

import http from 'node:http';
import crypto from 'node:crypto';
import { createRemoteJWKSet, jwtVerify, SignJWT, importJWK } from 'jose';

const BUG = process.env.REFGW_BUG || '';
const args = process.argv.slice(2);
const listen = args[args.indexOf('--listen') + 1] || '127.0.0.1:3000';
const [HOST, PORT] = [listen.slice(0, listen.lastIndexOf(':')), Number(listen.slice(listen.lastIndexOf(':') + 1))];
const v = (name, d = '') => process.env[`SPIN_VARIABLE_${name.toUpperCase()}`] ?? d;
const PUBLIC = v('public_url').replace(/\/$/, '');
const ORIGIN = v('origin_url').replace(/\/$/, '');
const ISSUER = v('oidc_issuer').replace(/\/$/, '');
const CLIENT_ID = v('oidc_client_id');
const CLIENT_SECRET = v('oidc_client_secret');
const AUTH_METHOD = v('oidc_token_auth_method', CLIENT_ID.endsWith('-es256') ? 'client_secret_post' : 'client_secret_basic');
const DOMAINS = v('allowed_email_domains').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
const SESSION_KEYS = v('session_keys').split(',').filter(Boolean).map((s) => {
  const [kid, k] = s.split(':');
  return { kid, key: Buffer.from(k, 'base64url') };
});

async function assertionKeys() {
  const out = [];
  for (const s of v('assertion_keys').split(',').filter(Boolean)) {
    const [kid, alg, d] = s.split(':');
    let jwk;
    if (alg === 'ed25519') {
      const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), Buffer.from(d, 'base64url')]);
      const pub = crypto.createPublicKey(crypto.createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' })).export({ format: 'jwk' });
      jwk = { ...pub, d, kid, alg: 'EdDSA', use: 'sig' };
    } else {
      const ecdh = crypto.createECDH('prime256v1');
      ecdh.setPrivateKey(Buffer.from(d, 'base64url'));
      const p = ecdh.getPublicKey();
      jwk = { kty: 'EC', crv: 'P-256', x: p.subarray(1, 33).toString('base64url'), y: p.subarray(33).toString('base64url'), d, kid, alg: 'ES256', use: 'sig' };
    }
    const { d: _d, ...pub } = jwk;
    out.push({ kid, alg: jwk.alg, key: await importJWK(jwk, jwk.alg), pub });
  }
  return out;
}
const AKEYS = await assertionKeys();

// ---------------------------------------------------------------- crypto
function seal(obj, purpose) {
  const { kid, key } = SESSION_KEYS[0];
  const iv = crypto.randomBytes(12);
  const c = crypto.createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(Buffer.from(purpose));
  const ct = Buffer.concat([c.update(JSON.stringify(obj)), c.final()]);
  return `${kid}.${Buffer.concat([iv, ct, c.getAuthTag()]).toString('base64url')}`;
}
function open(value, purpose) {
  if (!value || value.length > 4096) return null;
  const i = value.indexOf('.');
  const k = SESSION_KEYS.find((x) => x.kid === value.slice(0, i));
  if (!k) return null;
  try {
    const b = Buffer.from(value.slice(i + 1), 'base64url');
    if (b.length < 29 || b.toString('base64url') !== value.slice(i + 1)) return null;
    const d = crypto.createDecipheriv('aes-256-gcm', k.key, b.subarray(0, 12));
    d.setAAD(Buffer.from(purpose));
    d.setAuthTag(b.subarray(b.length - 16));
    const obj = JSON.parse(Buffer.concat([d.update(b.subarray(12, b.length - 16)), d.final()]).toString());
    return obj.exp > Date.now() / 1000 ? obj : null;
  } catch { return BUG === 'accept-any-cookie' ? { sub: 'mallory', exp: 2e9 } : null; }
}

// ---------------------------------------------------------------- helpers
let disco;
let idpJwks;
async function discovery() {
  if (!disco) {
    disco = await (await fetch(`${ISSUER}/.well-known/openid-configuration`)).json();
    idpJwks = createRemoteJWKSet(new URL(disco.jwks_uri));
  }
  return disco;
}
const b64 = (n) => crypto.randomBytes(n).toString('base64url');
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
function cookies(req) {
  const out = {};
  for (const part of (req.headers.cookie || '').split(/;\s*/)) {
    const i = part.indexOf('=');
    if (i > 0 && !(part.slice(0, i) in out)) out[part.slice(0, i)] = part.slice(i + 1);
  }
  return out;
}
const cookie = (name, value, path, maxAge) => `${name}=${value}; Path=${path}; HttpOnly; SameSite=Lax; Max-Age=${maxAge}`;
function safeRd(rd) {
  if (BUG === 'open-redirect') return rd || '/';
  if (typeof rd !== 'string' || !/^\/(?![/\\])/.test(rd) || /[\\\s\x00-\x1f\x7f]/.test(rd)) return '/';
  try { return new URL(rd, PUBLIC).origin === PUBLIC ? rd.replace(/[^\x21-\x7e]/gu, encodeURIComponent) : '/'; } catch { return '/'; }
}
function page(res, status, title, text, extra = {}) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', ...extra });
  res.end(`<!DOCTYPE html><html><head><meta charset="utf-8"><title>${esc(title)}</title></head><body><h1>${esc(title)}</h1><p>${esc(text)}</p></body></html>`);
}
function redirect(res, location, setCookies = []) {
  res.writeHead(302, { location, 'set-cookie': setCookies, 'cache-control': 'no-store' });
  res.end();
}
const wantsJson = (req) => /application\/json/.test(req.headers.accept || '') && !/text\/html/.test(req.headers.accept || '');
const usedStates = new Set();

// ---------------------------------------------------------------- routes
async function handle(req, res) {
  const url = new URL(req.url, PUBLIC);
  const p = url.pathname;
  const c = cookies(req);
  const session = open(c.edgeauth_session, 'session');

  if (p === '/.edgeauth/health') return page(res, 200, 'ok', 'ok');
  if (p === '/.edgeauth/jwks.json') {
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end(JSON.stringify({ keys: AKEYS.map((k) => k.pub) }));
  }
  if (p === '/.edgeauth/userinfo') {
    res.writeHead(session ? 200 : 401, { 'content-type': 'application/json' });
    return res.end(JSON.stringify(session ? session.id : { error: 'unauthenticated' }));
  }
  if (p === '/.edgeauth/login') {
    const d = await discovery();
    const st = { state: b64(24), nonce: b64(24), verifier: b64(32), rd: safeRd(url.searchParams.get('rd') ?? '/'), exp: Date.now() / 1000 + 600 };
    const a = new URL(d.authorization_endpoint);
    a.search = new URLSearchParams({
      response_type: 'code', client_id: CLIENT_ID, redirect_uri: `${PUBLIC}/.edgeauth/callback`, scope: 'openid email profile',
      state: st.state, nonce: st.nonce, code_challenge: crypto.createHash('sha256').update(st.verifier).digest('base64url'), code_challenge_method: 'S256',
    });
    return redirect(res, a.href, [cookie('edgeauth_login', seal(st, 'login'), '/.edgeauth/', 600)]);
  }
  if (p === '/.edgeauth/callback') {
    const q = url.searchParams;
    const st = open(c.edgeauth_login, 'login');
    const clear = cookie('edgeauth_login', '', '/.edgeauth/', 0);
    if (q.get('error')) {
      const denied = q.get('error') === 'access_denied';
      return page(res, denied ? 403 : 400, denied ? 'Sign-in cancelled' : 'Sign-in failed',
        denied ? 'Sign-in was cancelled or denied at the identity provider.' : 'The identity provider reported an error.', { 'set-cookie': clear });
    }
    if (!st || !q.get('state') || q.get('state') !== st.state || !q.get('code')) return page(res, 400, 'Bad sign-in request', 'The sign-in state is missing or does not match.', { 'set-cookie': clear });
    if (usedStates.has(st.state) && BUG !== 'no-replay-check') return page(res, 400, 'Sign-in already used', 'This sign-in response was already used.', { 'set-cookie': clear });
    usedStates.add(st.state);
    if (q.get('iss') && q.get('iss') !== ISSUER) return page(res, 400, 'Wrong issuer', 'The response came from another issuer.', { 'set-cookie': clear });
    const d = await discovery();
    const body = new URLSearchParams({ grant_type: 'authorization_code', code: q.get('code'), redirect_uri: `${PUBLIC}/.edgeauth/callback`, code_verifier: st.verifier });
    const headers = { 'content-type': 'application/x-www-form-urlencoded' };
    if (AUTH_METHOD === 'client_secret_post') { body.set('client_id', CLIENT_ID); body.set('client_secret', CLIENT_SECRET); } else headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(CLIENT_ID)}:${encodeURIComponent(CLIENT_SECRET)}`).toString('base64')}`;
    const tr = await fetch(d.token_endpoint, { method: 'POST', headers, body });
    const tok = await tr.json();
    if (!tr.ok || !tok.id_token) return page(res, 400, 'Sign-in failed', 'The identity provider did not accept the sign-in code.', { 'set-cookie': clear });
    let claims;
    try {
      ({ payload: claims } = await jwtVerify(tok.id_token, idpJwks, { issuer: ISSUER, audience: CLIENT_ID }));
      if (claims.nonce !== st.nonce) throw new Error('nonce');
    } catch { return page(res, 400, 'Sign-in failed', 'The ID token did not verify.', { 'set-cookie': clear }); }
    const id = { sub: claims.sub, email: claims.email, email_verified: claims.email_verified === true, name: claims.name, groups: [].concat(claims.groups ?? []) };
    if (DOMAINS.length && BUG !== 'no-domain-policy') {
      const dom = String(id.email || '').split('@');
      if (!id.email_verified || dom.length !== 2 || !DOMAINS.includes(dom[1].toLowerCase())) {
        return page(res, 403, 'Access denied', `Your account does not meet the allowed email domains rule (${DOMAINS.join(', ')}; verified email required).`, { 'set-cookie': clear });
      }
    }
    const sess = seal({ id, idt: tok.id_token, exp: Date.now() / 1000 + 8 * 3600 }, 'session');
    return redirect(res, st.rd, [`edgeauth_session=${sess}; Path=/; HttpOnly; SameSite=Lax`, clear]);
  }
  if (p === '/.edgeauth/logout') {
    const d = await discovery();
    const clearS = 'edgeauth_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0';
    const st = { rd: safeRd(url.searchParams.get('rd') ?? '/'), state: b64(16), exp: Date.now() / 1000 + 600 };
    const e = new URL(d.end_session_endpoint);
    e.search = new URLSearchParams({ post_logout_redirect_uri: `${PUBLIC}/.edgeauth/logged-out`, state: st.state, client_id: CLIENT_ID, ...(session ? { id_token_hint: session.idt } : {}) });
    return redirect(res, e.href, [clearS, cookie('edgeauth_logout', seal(st, 'logout'), '/.edgeauth/', 600)]);
  }
  if (p === '/.edgeauth/logged-out') {
    const st = open(c.edgeauth_logout, 'logout');
    if (st && st.state === url.searchParams.get('state')) return redirect(res, st.rd, [cookie('edgeauth_logout', '', '/.edgeauth/', 0)]);
    return page(res, 200, 'Signed out', 'You are signed out.');
  }
  if (p.startsWith('/.edgeauth/')) return page(res, 404, 'Not found', 'Not found');

  if (!session) {
    if (wantsJson(req)) {
      res.writeHead(401, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ error: 'unauthenticated', login: `${PUBLIC}/.edgeauth/login` }));
    }
    return redirect(res, `/.edgeauth/login?rd=${encodeURIComponent(req.url)}`);
  }
  return forward(req, res, session.id);
}

const IDENTITY = /^(x[-_]auth[-_]request[-_].*|x[-_]forwarded[-_](user|email|groups|access[-_]token|preferred[-_]username)|remote[-_]user|x[-_]edgeauth[-_].*)$/i;
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'host']);

async function forward(req, res, id) {
  const headers = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const k = req.rawHeaders[i];
    const lk = k.toLowerCase();
    if (HOP.has(lk)) continue;
    if (BUG !== 'keep-spoofed-headers' && (IDENTITY.test(k) || k.includes('_'))) continue;
    if (lk === 'cookie') {
      const kept = req.rawHeaders[i + 1].split(/;\s*/).filter((x) => !/^edgeauth_/.test(x.trim()) || BUG === 'leak-cookies');
      if (kept.length) headers.push(['cookie', kept.join('; ')]);
      continue;
    }
    headers.push([k, req.rawHeaders[i + 1]]);
  }
  const now = Math.floor(Date.now() / 1000);
  const k = AKEYS[0];
  const jwt = await new SignJWT({ email: id.email, email_verified: id.email_verified, name: id.name, groups: id.groups })
    .setProtectedHeader({ alg: k.alg, kid: k.kid, typ: 'JWT' }).setIssuer(PUBLIC).setAudience(ORIGIN).setSubject(id.sub)
    .setIssuedAt(now).setExpirationTime(now + 60).sign(k.key);
  headers.push(['X-Auth-Request-User', id.sub], ['X-Auth-Request-Email', id.email ?? ''], ['X-Auth-Request-Groups', id.groups.join(',')], ['X-Edgeauth-Assertion', jwt]);
  const o = new URL(ORIGIN);
  const flat = {};
  for (const [hk, hv] of headers) flat[hk.toLowerCase()] = flat[hk.toLowerCase()] ? `${flat[hk.toLowerCase()]}${hk.toLowerCase() === 'cookie' ? '; ' : ', '}${hv}` : hv;
  const up = http.request({ host: o.hostname, port: o.port, method: req.method, path: req.url, headers: flat, timeout: 10000 }, (ur) => {
    const out = [];
    for (let i = 0; i < ur.rawHeaders.length; i += 2) if (!HOP.has(ur.rawHeaders[i].toLowerCase())) out.push(ur.rawHeaders[i], ur.rawHeaders[i + 1]);
    res.writeHead(ur.statusCode, out);
    ur.pipe(res);
  });
  up.on('error', () => { if (!res.headersSent) page(res, 502, 'Bad gateway', 'The application is not reachable.'); else res.destroy(); });
  req.pipe(up);
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((e) => { console.error(e); if (!res.headersSent) page(res, 500, 'Error', 'Internal error'); });
});
server.listen(PORT, HOST, () => console.log(`edgeauth host listening on http://${HOST}:${server.address().port}`));
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
