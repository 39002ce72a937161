// A scripted OpenID Provider under the test's control, for what the real dev
// IdP never does: crafted ID tokens (alg none, HS256 keyed with the public key,
// unknown kid, wrong iss/aud/azp/nonce, bad times), malformed or hanging
// discovery/JWKS/token responses, arbitrary claims.
//
// One HTTP server, many "tenants": each tenant is an issuer under its own path
// (`${url}/t/<name>`), with its own keys and behaviour, so one gateway per
// tenant is enough and caches keyed by issuer can be told apart.
//
// The gateway is driven through its own endpoints: /.edgeauth/login redirects
// to `${issuer}/auth?...` (the test reads state and nonce from that URL), the
// test registers what the token endpoint answers for a code of its choosing
// (`tenant.onCode(code, spec)`), then calls /.edgeauth/callback?code&state.
//
// A response spec: { status = 200, json, body, contentType, headers,
//   delayMs,            answer after this long
//   hang: true,         accept the request and never answer (socket kept open)
//   destroy: true,      reset the connection without answering
//   stallBody: true }   send status + headers, then never finish the body

import crypto from 'node:crypto';
import http from 'node:http';
import { SignJWT, exportJWK } from 'jose';
import { freePort } from '../../lib/procs.mjs';

const b64u = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');

export function generateKeys() {
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const ed = crypto.generateKeyPairSync('ed25519');
  return {
    'rsa-1': { alg: 'RS256', ...rsa },
    'ec-1': { alg: 'ES256', ...ec },
    'ed-1': { alg: 'EdDSA', ...ed },
  };
}

export async function publicJwks(keys, extra = {}) {
  const out = [];
  for (const [kid, k] of Object.entries(keys)) {
    out.push({ ...(await exportJWK(k.publicKey)), kid, alg: k.alg, use: 'sig', ...(extra[kid] || {}) });
  }
  return { keys: out };
}

/** A JWS with arbitrary header and payload, signed by `sign(input)` (or unsigned). */
export function rawJws(header, payload, sign = () => '') {
  const input = `${b64u(header)}.${b64u(payload)}`;
  return `${input}.${sign(input)}`;
}

export function hmac(alg, secret) {
  const h = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }[alg];
  return (input) => crypto.createHmac(h, secret).update(input).digest('base64url');
}

class Tenant {
  constructor(op, name) {
    this.op = op;
    this.name = name;
    this.issuer = `${op.url}/t/${name}`;
    this.keys = generateKeys();
    this.jwksExtra = {};
    /** Further JWKs published as they are (keys the gateway must ignore, etc.). */
    this.extraJwks = [];
    this.codes = new Map();
    this.requests = [];
    /** Overrides: spec or (req, tenant) => spec, for 'discovery' | 'jwks' | 'end_session'. */
    this.behaviour = {};
    this.discoveryExtra = {};
  }

  discoveryDoc() {
    const i = this.issuer;
    return {
      issuer: i,
      authorization_endpoint: `${i}/auth`,
      token_endpoint: `${i}/token`,
      jwks_uri: `${i}/jwks`,
      end_session_endpoint: `${i}/session/end`,
      response_types_supported: ['code'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['RS256', 'ES256', 'EdDSA'],
      ...this.discoveryExtra,
    };
  }

  async jwks() {
    const doc = await publicJwks(this.keys, this.jwksExtra);
    doc.keys.push(...this.extraJwks);
    return doc;
  }

  /** What the token endpoint answers for `code` (spec, or (ctx) => spec). */
  onCode(code, spec) { this.codes.set(code, spec); }

  /** Standard, valid claims for this tenant (override any). */
  claims(nonce, over = {}) {
    const now = Math.floor(Date.now() / 1000);
    return {
      iss: this.issuer, aud: 'edgeauth', sub: 'mallory', nonce,
      iat: now, exp: now + 300,
      email: 'mallory@example.com', email_verified: true, name: 'Mallory', groups: ['users'],
      ...over,
    };
  }

  /** A correctly signed ID token (`kid` selects the key; `header` adds to the JOSE header). */
  async sign(payload, opts = {}) {
    const kid = 'kid' in opts ? opts.kid : 'rsa-1'; // { kid: undefined } means: no kid in the header
    const { header = {}, key } = opts;
    const k = key ?? this.keys[kid];
    const clean = Object.fromEntries(Object.entries(payload).filter(([, v]) => v !== undefined));
    const h = Object.fromEntries(Object.entries({ alg: k.alg, kid, typ: 'JWT', ...header }).filter(([, v]) => v !== undefined));
    return new SignJWT(clean).setProtectedHeader(h).sign(k.privateKey);
  }

  countOf(kind) { return this.requests.filter((r) => r.kind === kind).length; }
}

export async function startHostileIdp({ host = '127.0.0.3' } = {}) {
  const port = await freePort(host);
  const sockets = new Set();
  const tenants = new Map();
  const op = { url: `http://${host}:${port}`, host, port, tenants };

  const reply = async (req, res, spec) => {
    if (typeof spec === 'function') spec = await spec(req);
    if (spec.delayMs) await new Promise((r) => setTimeout(r, spec.delayMs));
    if (spec.hang) return; // keep the socket open, never answer
    if (spec.destroy) { req.socket.destroy(); return; }
    const body = spec.json !== undefined ? JSON.stringify(spec.json) : (spec.body ?? '');
    const type = spec.contentType ?? (spec.json !== undefined ? 'application/json' : 'text/html; charset=utf-8');
    if (spec.stallBody) {
      res.writeHead(spec.status ?? 200, { 'content-type': type, ...spec.headers });
      res.write(String(body).slice(0, 10));
      return;
    }
    res.writeHead(spec.status ?? 200, { 'content-type': type, 'content-length': Buffer.byteLength(body), ...spec.headers });
    res.end(body);
  };

  const readBody = (req) => new Promise((resolve) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });

  const server = http.createServer(async (req, res) => {
    try {
      const u = new URL(req.url, op.url);
      const m = u.pathname.match(/^\/t\/([^/]+)(\/.*)$/);
      const t = m && tenants.get(m[1]);
      if (!t) return reply(req, res, { status: 404, body: 'no such tenant' });
      const rest = m[2];
      const rec = { kind: rest, method: req.method, url: req.url, headers: req.headers, at: Date.now() };
      t.requests.push(rec);
      if (rest === '/.well-known/openid-configuration') {
        rec.kind = 'discovery';
        return reply(req, res, t.behaviour.discovery ?? { json: t.discoveryDoc() });
      }
      if (rest === '/jwks') {
        rec.kind = 'jwks';
        return reply(req, res, t.behaviour.jwks ?? { json: await t.jwks() });
      }
      if (rest === '/token' && req.method === 'POST') {
        rec.kind = 'token';
        const form = new URLSearchParams(await readBody(req));
        rec.form = Object.fromEntries(form);
        const spec = t.codes.get(form.get('code'));
        if (!spec) return reply(req, res, { status: 400, json: { error: 'invalid_grant' } });
        return reply(req, res, typeof spec === 'function' ? await spec({ form, req, tenant: t }) : spec);
      }
      if (rest === '/session/end') {
        rec.kind = 'end_session';
        if (t.behaviour.end_session) return reply(req, res, t.behaviour.end_session);
        const back = new URL(u.searchParams.get('post_logout_redirect_uri'));
        if (u.searchParams.has('state')) back.searchParams.set('state', u.searchParams.get('state'));
        return reply(req, res, { status: 302, headers: { location: back.href } });
      }
      if (rest === '/auth') {
        rec.kind = 'auth';
        return reply(req, res, { status: 200, body: 'authorize (the test drives the callback itself)' });
      }
      return reply(req, res, { status: 404, body: 'not found' });
    } catch (e) {
      if (!res.headersSent) { res.writeHead(500); res.end(String(e)); }
    }
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise((resolve, reject) => { server.once('error', reject); server.listen(port, host, resolve); });

  op.tenant = (name) => {
    if (!tenants.has(name)) tenants.set(name, new Tenant(op, name));
    return tenants.get(name);
  };
  op.stop = () => new Promise((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(() => resolve());
  });
  return op;
}
