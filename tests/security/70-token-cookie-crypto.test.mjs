// Class 7 (issue 3, item 3) — token and cookie crypto, through the running
// gateway.
//
// ID tokens: a scripted provider (lib/hostile-idp.mjs) answers the gateway's
// token request with crafted ID tokens — alg none, HS256/384/512 keyed with
// the provider's public keys in every encoding, key/alg mismatches, PS/RS384,
// unknown/odd kids, embedded jwk/jku/x5u, ignored JWKS entries (oct, 1024-bit
// RSA, use=enc), wrong iss/aud/azp, bad exp/iat/nbf, missing/wrong nonce or
// sub, malformed and oversized tokens, spliced signatures. Each callback must
// fail closed: no session cookie, no off-site redirect, no token in the body,
// answered quickly. Positive controls (RS256, ES256, EdDSA) prove the harness.
//
// Session cookies: a real session (dev IdP) is flipped at every position,
// truncated at every length, re-ordered, re-keyed (same kid, other secret;
// other kid), re-purposed (login cookie, logout state), re-encoded, oversized,
// multiplied and split into absurd part counts. Each is "no session" (login
// redirect / 401), nothing reaches the origin, memory stays bounded.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { exportJWK } from 'jose';
import { CookieJar, request, rawRequest } from '../lib/http.mjs';
import { startStack, stopStack, sessionKey } from '../lib/stack.mjs';
import { loginOk, sessionValue, startLogin, LOGIN } from '../lib/gateway-flow.mjs';
import { startHostileIdp, rawJws, hmac } from './lib/hostile-idp.mjs';
import {
  Failures, pool, hostileSignIn, tokenAnswer, issuesSession, locationProblem, secretsOf, leaks, processLog, rssKb, show,
} from './lib/sec.mjs';

let stack; let idp; let origin; let op; let t; let gw; let gwForeign; let gwOtherKid;
let value; let foreignValue; let otherKidValue; let loginValue; let logoutState;
const weak = crypto.generateKeyPairSync('rsa', { modulusLength: 1024 });
const attacker = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const octSecret = crypto.randomBytes(32);
const issuedTokens = [];

before(async () => {
  stack = await startStack({ gateways: 4 });
  ({ idp, origin } = stack);
  op = await startHostileIdp();
  t = op.tenant('crypto');
  t.extraJwks = [
    { kty: 'oct', k: octSecret.toString('base64url'), kid: 'oct-1', alg: 'HS256' },
    { ...(await exportJWK(weak.publicKey)), kid: 'rsa-weak', alg: 'RS256', use: 'sig' },
    { ...(await exportJWK(attacker.publicKey)), kid: 'rsa-enc', use: 'enc' },
    { ...(await exportJWK(t.keys['ec-1'].publicKey)), kid: 'ec-as-rs', alg: 'RS256' },
  ];
  gw = await stack.startGateway({ issuer: t.issuer });
  // session cookies from the real IdP: ours, one under the same kid with another secret, one under another kid
  const real = stack.gateway;
  const jar = new CookieJar();
  await loginOk(real, idp, jar, '/');
  value = sessionValue(jar);
  gwForeign = await stack.startGateway({ sessionKeys: [sessionKey(real.sessionKeys[0].kid)] });
  const j2 = new CookieJar();
  await loginOk(gwForeign, idp, j2, '/');
  foreignValue = sessionValue(j2);
  gwOtherKid = await stack.startGateway({});
  const j3 = new CookieJar();
  await loginOk(gwOtherKid, idp, j3, '/');
  otherKidValue = sessionValue(j3);
  const j4 = new CookieJar();
  await startLogin(real, j4, `${real.url}/.edgeauth/login?rd=%2F`, idp.issuer);
  loginValue = j4.get('127.0.0.1', LOGIN).value;
  const out = await request(`${real.url}/.edgeauth/logout?rd=%2Fx`);
  logoutState = new URL(out.location).searchParams.get('state');
});
after(async () => { await stopStack(stack); await op?.stop(); });

// ------------------------------------------------------------ ID token variants
const now = () => Math.floor(Date.now() / 1000);
const b64u = (x) => Buffer.from(x).toString('base64url');
const pem = (k, type = 'spki') => k.export({ type, format: 'pem' });

/** name -> async ({ nonce }) => id_token (or a whole token-endpoint answer as { answer }) */
function idTokenVariants() {
  const v = {};
  const rsa = t.keys['rsa-1'];
  const ec = t.keys['ec-1'];
  const ed = t.keys['ed-1'];
  const c = (nonce, over) => t.claims(nonce, over);
  const signed = (nonce, over, opts) => t.sign(c(nonce, over), opts);
  // alg none
  for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
    v[`alg ${alg}`] = async ({ nonce }) => rawJws({ alg, typ: 'JWT' }, c(nonce));
    v[`alg ${alg} kid rsa-1`] = async ({ nonce }) => rawJws({ alg, kid: 'rsa-1' }, c(nonce));
  }
  v['alg none with a valid RS256 signature kept'] = async ({ nonce }) => {
    const good = await signed(nonce);
    const [, p, s] = good.split('.');
    return `${b64u(JSON.stringify({ alg: 'none', kid: 'rsa-1' }))}.${p}.${s}`;
  };
  v['alg missing'] = async ({ nonce }) => rawJws({ kid: 'rsa-1' }, c(nonce), (i) => crypto.sign('sha256', Buffer.from(i), rsa.privateKey).toString('base64url'));
  v['alg empty'] = async ({ nonce }) => rawJws({ alg: '', kid: 'rsa-1' }, c(nonce));
  v['alg array'] = async ({ nonce }) => rawJws({ alg: ['RS256'], kid: 'rsa-1' }, c(nonce));
  // HMAC keyed with public key material (RS/HS confusion) in every encoding
  const rsaJwk = { kty: 'RSA', ...rsa.publicKey.export({ format: 'jwk' }) };
  const secrets = {
    'RSA SPKI PEM': pem(rsa.publicKey), 'RSA PKCS1 PEM': pem(rsa.publicKey, 'pkcs1'), 'RSA SPKI DER': rsa.publicKey.export({ type: 'spki', format: 'der' }),
    'RSA PKCS1 DER': rsa.publicKey.export({ type: 'pkcs1', format: 'der' }), 'RSA JWK JSON': JSON.stringify(rsaJwk), 'RSA modulus n': Buffer.from(rsaJwk.n, 'base64url'),
    'RSA n as text': rsaJwk.n, 'RSA PEM without newline': pem(rsa.publicKey).trim(), 'EC SPKI PEM': pem(ec.publicKey), 'EC point': Buffer.from(ec.publicKey.export({ format: 'jwk' }).x, 'base64url'),
    'Ed25519 raw x': Buffer.from(ed.publicKey.export({ format: 'jwk' }).x, 'base64url'), 'Ed25519 PEM': pem(ed.publicKey), 'JWKS document': '{"keys":[]}', 'empty secret': '',
    'client secret': 'edgeauth-dev-secret', 'oct JWK secret (published, must be ignored)': octSecret,
  };
  for (const [name, secret] of Object.entries(secrets)) {
    for (const alg of ['HS256', 'HS384', 'HS512']) {
      if (alg !== 'HS256' && !name.startsWith('RSA SPKI')) continue;
      for (const kid of name.startsWith('oct') ? ['oct-1'] : name.startsWith('EC') ? ['ec-1'] : name.startsWith('Ed') ? ['ed-1'] : ['rsa-1', undefined]) {
        v[`${alg} keyed with ${name}, kid ${kid}`] = async ({ nonce }) => rawJws({ alg, typ: 'JWT', ...(kid ? { kid } : {}) }, c(nonce), hmac(alg, secret || Buffer.alloc(0)));
      }
    }
  }
  // key / alg mismatches and algorithms the gateway does not take
  v['RS256 header, kid ec-1, signed with RSA key'] = async ({ nonce }) => signed(nonce, {}, { kid: 'ec-1', key: rsa });
  v['ES256 header, kid rsa-1, signed with EC key'] = async ({ nonce }) => signed(nonce, {}, { kid: 'rsa-1', key: ec });
  v['EdDSA header, kid rsa-1, signed with Ed key'] = async ({ nonce }) => signed(nonce, {}, { kid: 'rsa-1', key: ed });
  v['EdDSA header, kid ec-1'] = async ({ nonce }) => signed(nonce, {}, { kid: 'ec-1', key: ed });
  for (const alg of ['PS256', 'RS384', 'RS512', 'PS512']) v[`${alg} with the published RSA key`] = async ({ nonce }) => signed(nonce, {}, { kid: 'rsa-1', key: { alg, privateKey: rsa.privateKey } });
  v['alg Ed25519 (fully-specified name)'] = async ({ nonce }) => signed(nonce, {}, { kid: 'ed-1', key: { alg: 'Ed25519', privateKey: ed.privateKey } });
  v['RS256 with the 1024-bit published key'] = async ({ nonce }) => rawJws({ alg: 'RS256', kid: 'rsa-weak' }, c(nonce), (i) => crypto.sign('sha256', Buffer.from(i), weak.privateKey).toString('base64url'));
  v['RS256 with a use=enc published key'] = async ({ nonce }) => signed(nonce, {}, { kid: 'rsa-enc', key: { alg: 'RS256', privateKey: attacker.privateKey } });
  v['RS256 naming an EC key published with alg RS256'] = async ({ nonce }) => signed(nonce, {}, { kid: 'ec-as-rs', key: rsa });
  // unknown keys and header tricks
  const att = { alg: 'RS256', privateKey: attacker.privateKey };
  v['unknown kid, attacker key'] = async ({ nonce }) => signed(nonce, {}, { kid: 'attacker', key: att });
  v['no kid, attacker key'] = async ({ nonce }) => signed(nonce, {}, { kid: undefined, key: att });
  v['kid rsa-1, attacker key'] = async ({ nonce }) => signed(nonce, {}, { kid: 'rsa-1', key: att });
  v['embedded jwk of the attacker key'] = async ({ nonce }) => signed(nonce, {}, { kid: 'attacker', key: att, header: { jwk: await exportJWK(attacker.publicKey) } });
  v['embedded jwk, kid rsa-1'] = async ({ nonce }) => signed(nonce, {}, { kid: 'rsa-1', key: att, header: { jwk: await exportJWK(attacker.publicKey) } });
  v['jku to an attacker JWKS'] = async ({ nonce }) => signed(nonce, {}, { kid: 'attacker', key: att, header: { jku: 'https://evil.example/jwks' } });
  v['x5u to an attacker cert'] = async ({ nonce }) => signed(nonce, {}, { kid: 'attacker', key: att, header: { x5u: 'https://evil.example/cert.pem' } });
  for (const kid of ['../../../../dev/null', "' OR '1'='1", 'rsa-1\u0000', 'RSA-1', ' rsa-1', 'rsa-1 ', 'x'.repeat(10000)]) {
    v[`kid ${JSON.stringify(kid).slice(0, 30)}`] = async ({ nonce }) => signed(nonce, {}, { kid, key: att });
  }
  v['kid number'] = async ({ nonce }) => rawJws({ alg: 'RS256', kid: 1 }, c(nonce), (i) => crypto.sign('sha256', Buffer.from(i), rsa.privateKey).toString('base64url'));
  v['kid null'] = async ({ nonce }) => rawJws({ alg: 'RS256', kid: null }, c(nonce), (i) => crypto.sign('sha256', Buffer.from(i), attacker.privateKey).toString('base64url'));
  // claims
  const claimCases = {
    'iss of another provider': { iss: 'https://evil.example' }, 'iss with trailing slash': { iss: `${t.issuer}/` }, 'iss in upper case': { iss: t.issuer.toUpperCase() },
    'iss of the real dev IdP': { iss: 'http://127.0.0.2:9400' }, 'iss missing': { iss: undefined }, 'iss array': { iss: [t.issuer] }, 'iss with a space': { iss: `${t.issuer} ` },
    'aud other': { aud: 'other-client' }, 'aud missing': { aud: undefined }, 'aud [other]': { aud: ['other-client'] }, 'aud [us, other] without azp': { aud: ['edgeauth', 'other'] },
    'aud upper case': { aud: 'EDGEAUTH' }, 'aud with a space': { aud: 'edgeauth ' }, 'aud []': { aud: [] }, 'aud number': { aud: 1 },
    'azp other': { azp: 'other-client' }, 'azp number': { azp: 7 }, 'azp empty': { azp: '' }, 'aud [us, other], azp other': { aud: ['edgeauth', 'other'], azp: 'other' },
    'expired 2 min ago': { exp: now() - 120 }, 'expired 1 h ago': { exp: now() - 3600, iat: now() - 7200 }, 'exp missing': { exp: undefined }, 'exp string': { exp: String(now() + 300) },
    'exp negative': { exp: -1 }, 'exp 0': { exp: 0 },
    'iat 1 h in the future': { iat: now() + 3600, exp: now() + 7200 }, 'iat 2 min in the future': { iat: now() + 120 }, 'iat missing': { iat: undefined }, 'iat string': { iat: String(now()) },
    'nbf 1 h in the future': { nbf: now() + 3600 }, 'nbf 2 min in the future': { nbf: now() + 120 },
    'nonce missing': { nonce: undefined }, 'nonce wrong': { nonce: 'not-the-nonce' }, 'nonce empty': { nonce: '' }, 'nonce null': { nonce: null },
    'sub missing': { sub: undefined }, 'sub empty': { sub: '' }, 'sub blank': { sub: '   ' }, 'sub number': { sub: 42 }, 'sub 10k chars': { sub: 's'.repeat(10000) },
    'sub with a control character': { sub: 'mal\u0007lory' },
  };
  for (const [name, over] of Object.entries(claimCases)) v[name] = async ({ nonce }) => signed(nonce, over);
  for (const [name, f] of Object.entries({ 'nonce in an array': (n) => [n], 'nonce with a space': (n) => `${n} `, 'nonce upper-cased': (n) => n.toUpperCase(), 'nonce prefix': (n) => n.slice(0, -1) })) {
    v[name] = async ({ nonce }) => signed(nonce, { nonce: f(nonce) });
  }
  v['nonce of another sign-in (replayed token)'] = async () => signed(crypto.randomBytes(24).toString('base64url'));
  // malformed and spliced tokens
  v['two parts'] = async ({ nonce }) => (await signed(nonce)).split('.').slice(0, 2).join('.');
  v['four parts'] = async ({ nonce }) => `${await signed(nonce)}.AAAA`;
  v['empty string'] = async () => '';
  v['dots only'] = async () => '..';
  v['garbage'] = async () => 'not a jwt at all';
  v['header not JSON'] = async ({ nonce }) => `${b64u('{alg:RS256')}.${b64u(JSON.stringify(c(nonce)))}.AAAA`;
  v['payload not JSON'] = async () => rawJws({ alg: 'RS256', kid: 'rsa-1' }, 'x', (i) => crypto.sign('sha256', Buffer.from(i), rsa.privateKey).toString('base64url')).replace(/^([^.]+)\.[^.]+/, (m, h) => `${h}.${b64u('not json')}`);
  v['payload JSON array'] = async () => { const i = `${b64u(JSON.stringify({ alg: 'RS256', kid: 'rsa-1' }))}.${b64u('[1,2]')}`; return `${i}.${crypto.sign('sha256', Buffer.from(i), rsa.privateKey).toString('base64url')}`; };
  v['duplicate alg keys in header (RS256 then none)'] = async ({ nonce }) => `${b64u('{"alg":"RS256","kid":"rsa-1","alg":"none"}')}.${b64u(JSON.stringify(c(nonce)))}.`;
  v['signature flipped'] = async ({ nonce }) => { const s = await signed(nonce); return s.slice(0, -5) + (s.at(-5) === 'A' ? 'B' : 'A') + s.slice(-4); };
  v['signature truncated'] = async ({ nonce }) => (await signed(nonce)).slice(0, -10);
  v['signature removed'] = async ({ nonce }) => (await signed(nonce)).replace(/[^.]+$/, '');
  v['payload swapped under a valid signature'] = async ({ nonce }) => {
    const good = (await signed(nonce, { sub: 'mallory' })).split('.');
    return `${good[0]}.${b64u(JSON.stringify(c(nonce, { sub: 'admin', groups: ['admins'] })))}.${good[2]}`;
  };
  v['padding and standard base64'] = async ({ nonce }) => (await signed(nonce)).split('.').map((p) => Buffer.from(p, 'base64url').toString('base64')).join('.');
  v['over 16 KiB (valid signature)'] = async ({ nonce }) => signed(nonce, { pad: 'p'.repeat(17000) });
  v['1 MiB'] = async () => 'e'.repeat(1 << 20);
  // token endpoint shapes
  const answers = {
    'id_token number': { json: { id_token: 42, token_type: 'Bearer' } }, 'id_token null': { json: { id_token: null } }, 'id_token array': { json: { id_token: ['a.b.c'] } },
    'id_token object': { json: { id_token: { alg: 'none' } } }, 'no id_token': { json: { access_token: 'x', token_type: 'Bearer' } }, 'error with status 200': { json: { error: 'server_error' } },
    'id_token in a 500': { status: 500, json: { id_token: 'x.y.z' } }, 'id_token in a 302': { status: 302, headers: { location: 'https://evil.example/' }, json: {} },
  };
  for (const [name, a] of Object.entries(answers)) v[`token answer: ${name}`] = async () => ({ answer: a });
  return v;
}

async function runVariant(name, make, f) {
  const label = `id_token ${name}`;
  const r = await hostileSignIn(gw, t, async (ctx) => {
    const tok = await make(ctx);
    if (tok && typeof tok === 'object' && tok.answer) return tok.answer;
    issuedTokens.push(tok);
    return tokenAnswer(tok);
  });
  const cb = r.cb;
  f.check(!issuesSession(cb), `${label}: SESSION ISSUED (${cb.status} ${cb.rawLocation})`);
  f.check(cb.status >= 400 && cb.status < 600, `${label}: callback ${cb.status} ${cb.rawLocation || ''}`);
  const p = locationProblem(cb.rawLocation, gw.url);
  f.check(!p, `${label}: ${p}`);
  f.check(r.ms < 5000, `${label}: took ${r.ms} ms`);
  const l = leaks(cb.body, secretsOf(gw), [r.idToken]);
  f.check(l.length === 0, `${label}: body leaks ${l.join(', ')}`);
  f.check(!/<script|<img/i.test(cb.body), `${label}: unescaped markup in the page`);
  const who = await request(`${gw.url}/.edgeauth/userinfo`, { jar: r.jar, accept: 'application/json' });
  f.check(who.status === 401, `${label}: userinfo ${who.status} after the callback`);
}

test('positive controls: RS256, ES256 and EdDSA tokens from the scripted provider sign in', async () => {
  for (const kid of ['rsa-1', 'ec-1', 'ed-1']) {
    const r = await hostileSignIn(gw, t, async ({ nonce }) => tokenAnswer(await t.sign(t.claims(nonce), { kid })));
    assert.equal(r.cb.status, 302, `${kid}: ${show(r.cb)}`);
    assert.ok(issuesSession(r.cb), `${kid}: no session`);
  }
  const multi = await hostileSignIn(gw, t, async ({ nonce }) => tokenAnswer(await t.sign(t.claims(nonce, { aud: ['edgeauth', 'other'], azp: 'edgeauth' }))));
  assert.equal(multi.cb.status, 302, `aud [us, other] with azp = us: ${show(multi.cb)}`);
  const nokid = await hostileSignIn(gw, t, async ({ nonce }) => tokenAnswer(await t.sign(t.claims(nonce), { kid: undefined, key: t.keys['ed-1'] })));
  assert.equal(nokid.cb.status, 302, `EdDSA without kid, one Ed25519 key published: ${show(nokid.cb)}\n${nokid.cb.body}`);
});

test('crafted ID tokens are all refused at the callback: no session, no redirect off-site, no token echoed', async () => {
  const variants = Object.entries(idTokenVariants());
  const f = new Failures('ID token variants');
  await pool(variants, 6, ([name, make]) => runVariant(name, make, f));
  f.done();
  console.log(`# ${variants.length} crafted ID token / token response variants`);
});

// ------------------------------------------------------------ session cookies
const jsonNoSession = async (g, cookieHeader, f, label) => {
  const r = await rawRequest(g.url, { target: `/private?c=${encodeURIComponent(label.slice(0, 40))}`, headers: [['Accept', 'application/json'], ['Cookie', cookieHeader]], timeoutMs: 10000 })
    .catch((e) => ({ status: 0, error: e.message, body: '' }));
  // No session: an API client gets 401 (the host takes Cookie headers of these sizes).
  f.check(r.status === 401, `${label}: ${r.status} ${r.error ?? ''} ${r.body?.slice(0, 80)}`);
  return r;
};

function cookieVariants(v) {
  const out = {};
  const [kid, body] = [v.slice(0, v.indexOf('.')), v.slice(v.indexOf('.') + 1)];
  for (let i = 0; i < v.length; i++) {
    const ch = v[i];
    out[`flip at ${i}`] = v.slice(0, i) + (ch === 'A' ? 'B' : ch === '.' ? '_' : 'A') + v.slice(i + 1);
  }
  for (let i = 0; i < v.length; i++) out[`cut to ${i}`] = v.slice(0, i);
  const blob = Buffer.from(body, 'base64url');
  const nonce = blob.subarray(0, 24); const ct = blob.subarray(24, blob.length - 16); const tag = blob.subarray(blob.length - 16);
  const re = (...parts) => `${kid}.${Buffer.concat(parts).toString('base64url')}`;
  Object.assign(out, {
    'ciphertext before nonce': re(ct, tag, nonce), 'tag before ciphertext': re(nonce, tag, ct), 'blocks reversed': re(tag, ct, nonce), 'ciphertext only': re(ct, tag),
    'nonce only': re(nonce), 'nonce doubled': re(nonce, nonce, ct, tag), 'tag dropped': re(nonce, ct), 'bytes reversed': re(Buffer.from(blob).reverse()),
    'ciphertext halves swapped': re(nonce, ct.subarray(ct.length >> 1), ct.subarray(0, ct.length >> 1), tag), 'zero nonce': re(Buffer.alloc(24), ct, tag),
    'zero tag': re(nonce, ct, Buffer.alloc(16)), 'all zero': re(Buffer.alloc(blob.length)), 'first byte of ciphertext xor 1': re(nonce, Buffer.from([ct[0] ^ 1]), ct.subarray(1), tag),
    'parts swapped': `${body}.${kid}`, 'kid dropped': body, 'kid empty': `.${body}`, 'unknown kid': `zz${kid}.${body}`, 'kid upper-cased': `${kid.toUpperCase()}.${body}`,
    'two dots': `${kid}..${body}`, 'extra part': `${v}.${body}`, 'kid twice': `${kid}.${kid}.${body}`, 'standard base64': `${kid}.${blob.toString('base64')}`,
    'with padding': `${kid}.${body}==`, 'whitespace inside': `${kid}.${body.slice(0, 10)} ${body.slice(10)}`, 'percent-encoded': `${kid}%2E${body}`,
    'doubled': v + v, 'appended AAAA': `${v}AAAA`, 'kid of the login purpose value': loginValue, 'logout state as session': logoutState,
    'same kid, other secret (another gateway)': foreignValue, 'other kid (another tenant)': otherKidValue,
    'other kid, this body': `${otherKidValue.split('.')[0]}.${body}`, 'this kid, foreign body': `${kid}.${foreignValue.split('.')[1]}`,
    'oversized 4001': `${kid}.${'A'.repeat(4001)}`, 'oversized 8 KiB': `${kid}.${'A'.repeat(8192)}`, 'oversized 15 KiB': `${kid}.${'A'.repeat(15360)}`,
  });
  return out;
}

test('tampered, truncated, re-ordered, re-keyed and re-purposed session cookies are no session', async () => {
  const real = stack.gateway;
  await origin.reset();
  const variants = Object.entries(cookieVariants(value)).filter(([, x]) => x !== value);
  const f = new Failures('session cookie variants');
  const rss0 = rssKb(real.proc.pid);
  const t0 = Date.now();
  await pool(variants, 8, ([label, x]) => jsonNoSession(real, `edgeauth_session=${x}`, f, label));
  const ms = Date.now() - t0;
  f.done();
  assert.deepEqual((await origin.requests()).filter((r) => r.url.startsWith('/private')).map((r) => r.url), [], 'a forged cookie reached the origin');
  // browsers too: a login redirect, not an error
  for (const x of [foreignValue, otherKidValue, loginValue, value.slice(0, -3)]) {
    const r = await rawRequest(real.url, { target: '/private', headers: [['Accept', 'text/html'], ['Cookie', `edgeauth_session=${x}`]] });
    assert.equal(r.status, 302);
    assert.equal(new URL(r.header('location'), real.url).pathname, '/.edgeauth/login');
  }
  const grown = rssKb(real.proc.pid) - rss0;
  assert.ok(grown < 100 * 1024, `gateway memory grew by ${grown} KiB`);
  // the genuine cookie still works, and in the presence of junk before it
  const ok = await rawRequest(real.url, { target: '/private', headers: [['Accept', 'application/json'], ['Cookie', `edgeauth_session=garbage; edgeauth_session=${value}`]] });
  assert.equal(ok.status, 200);
  console.log(`# ${variants.length} session cookie variants in ${ms} ms`);
});

test('absurd sizes, counts and split-cookie part declarations are bounded', async () => {
  const real = stack.gateway;
  const kid = value.split('.')[0];
  const many = (n, f) => Array.from({ length: n }, (_, i) => f(i)).join('; ');
  const shapes = {
    'one 16 KiB value': `edgeauth_session=${kid}.${'A'.repeat(16 * 1024)}`,
    'one 60 KiB value': `edgeauth_session=${'A'.repeat(60 * 1024)}`,
    '200 session cookies': many(200, () => `edgeauth_session=${value.slice(0, 50)}`),
    '2000 tiny cookies': many(2000, (i) => `c${i}=1`),
    'genuine cookie after 5 junk ones': `${many(5, () => 'edgeauth_session=junk')}; edgeauth_session=${value}`,
    'parts 0..999': many(1000, (i) => `edgeauth_session_${i}=AAAA`),
    'declared part count 2^32': `edgeauth_session=${kid}.${'A'.repeat(40)}; edgeauth_session_count=4294967295; edgeauth_session.parts=99999999`,
    'declared count in the value': `edgeauth_session=chunks-99999999; edgeauth_session_1=${value}`,
    'length-prefixed value claiming 1 GiB': `edgeauth_session=${kid}.1073741824:${'A'.repeat(30)}`,
    'genuine value split in two parts': `edgeauth_session_0=${value.slice(0, 200)}; edgeauth_session_1=${value.slice(200)}`,
    'nested quotes': `edgeauth_session="${'"'.repeat(3000)}"`,
    'only separators': ';'.repeat(8000),
    'equals signs': `edgeauth_session=${'='.repeat(8000)}`,
  };
  const f = new Failures('cookie shapes');
  const rss0 = rssKb(real.proc.pid);
  for (const [label, cookie] of Object.entries(shapes)) {
    const t0 = Date.now();
    const r = await jsonNoSession(real, cookie, { check: (ok, m) => f.check(ok || label.startsWith('genuine cookie after'), m) }, label);
    f.check(Date.now() - t0 < 2000, `${label}: took ${Date.now() - t0} ms`);
    if (label.startsWith('genuine cookie after')) f.check(r.status === 200 || r.status === 401, `${label}: ${r.status}`);
  }
  // many Cookie header lines (under the host's header-line cap)
  const lines = Array.from({ length: 60 }, (_, i) => ['Cookie', `edgeauth_session=${i % 2 ? 'junk' : value.slice(0, 100)}; x${i}=${'b'.repeat(200)}`]);
  const r = await rawRequest(real.url, { target: '/private', headers: [['Accept', 'application/json'], ...lines] }).catch((e) => ({ status: 0, e }));
  f.check(r.status === 401, `60 Cookie lines: ${r.status}`);
  // the same shapes, 20 at once
  await pool(Array.from({ length: 40 }, (_, i) => Object.values(shapes)[i % Object.keys(shapes).length]), 20,
    (cookie) => rawRequest(real.url, { target: '/private', headers: [['Accept', 'application/json'], ['Cookie', cookie]] }).catch(() => null));
  const grown = rssKb(real.proc.pid) - rss0;
  f.check(grown < 100 * 1024, `gateway memory grew by ${grown} KiB`);
  f.done();
  const health = await request(`${real.url}/.edgeauth/health`);
  assert.equal(health.status, 200, 'still serving');
});

test('tampered login cookies and login cookies of other purposes are refused at the callback', async () => {
  const real = stack.gateway;
  const f = new Failures('login cookie variants');
  const jar = new CookieJar();
  const s = await startLogin(real, jar, `${real.url}/.edgeauth/login?rd=%2F`, idp.issuer);
  const state = s.params.get('state');
  const lv = jar.get('127.0.0.1', LOGIN).value;
  const variants = { ...Object.fromEntries(Object.entries(cookieVariants(lv)).filter((_, i) => i % 9 === 0)), 'session value as login cookie': value, 'logout state as login cookie': logoutState };
  await pool(Object.entries(variants), 8, async ([label, x]) => {
    if (x === lv) return;
    const r = await rawRequest(real.url, { target: `/.edgeauth/callback?code=abc&state=${encodeURIComponent(state)}`, headers: [['Cookie', `edgeauth_login=${x}`]] });
    f.check(r.status === 400, `${label}: ${r.status}`);
    f.check(!r.headers.some(([k, v]) => k === 'set-cookie' && /^edgeauth_session=[^;]+/.test(v)), `${label}: session issued`);
  });
  f.done();
});

test('no secret, token or session value in the gateway logs', () => {
  const logs = stack.gateways.map((g) => processLog(g.proc)).join('\n');
  const l = leaks(logs, secretsOf(...stack.gateways), [value, foreignValue, otherKidValue, loginValue, ...issuedTokens.filter((x) => typeof x === 'string' && x.length > 20)]);
  assert.deepEqual(l, []);
});
