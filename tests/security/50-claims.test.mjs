// Class 5 — claims, through the running gateway. Signed, otherwise valid ID
// tokens (scripted provider) carry hostile claim shapes: emails with several
// `@`, look-alike and IDN domains, sub-/super-domains, percent-escapes,
// unverified or oddly typed `email_verified`, `groups` as string, nested,
// typed, case- or script-shifted, oversized; missing claims. A domain rule
// (global and per route) admits only a verified email at exactly the domain
// (IDNA-mapped, letter case folded, as README documents); a group rule only
// an exact group. A few of the shapes also come from the real dev IdP (users
// added with IDP_EXTRA_USERS). What the origin receives must not let it read
// a group or identity the gateway did not grant.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { domainToASCII } from 'node:url';
import { CookieJar, request } from '../lib/http.mjs';
import { startStack, stopStack } from '../lib/stack.mjs';
import { login, verifyAssertion } from '../lib/gateway-flow.mjs';
import { startHostileIdp } from './lib/hostile-idp.mjs';
import { Failures, pool, validSignIn, issuesSession, show } from './lib/sec.mjs';

const ROUTES = JSON.stringify([{ path: '/admin/', allowed_groups: ['admins'] }, { path: '/corp/', allowed_email_domains: ['corp.example'] }]);
const EXTRA_USERS = {
  'multi-at': { password: 'pw', claims: { email: 'mallory@evil.test@example.com', email_verified: true, groups: ['users'] } },
  'unverified': { password: 'pw', claims: { email: 'eve@example.com', email_verified: false, groups: ['admins'] } },
  'cyrillic': { password: 'pw', claims: { email: 'ivan@ex\u0430mple.com', email_verified: true } },
  'upper': { password: 'pw', claims: { email: 'Una@EXAMPLE.COM', email_verified: true } },
  'grpstring': { password: 'pw', claims: { email: 'gus@example.com', email_verified: true, groups: 'admins,devs' } },
  'grpcomma': { password: 'pw', claims: { email: 'cora@example.com', email_verified: true, groups: ['devs,admins'] } },
  'verifiedstr': { password: 'pw', claims: { email: 'vera@example.com', email_verified: 'true', groups: 'admins' } },
};

let stack; let op; let t; let gDom; let gOpen; let gIdp;

before(async () => {
  stack = await startStack({ gateways: 4, gatewayOptions: { vars: { routes: ROUTES } }, idpEnv: { IDP_EXTRA_USERS: JSON.stringify(EXTRA_USERS) } });
  op = await startHostileIdp();
  t = op.tenant('claims');
  gDom = await stack.startGateway({ issuer: t.issuer, allowedEmailDomains: 'example.com', vars: { routes: ROUTES } });
  gOpen = await stack.startGateway({ issuer: t.issuer, vars: { routes: ROUTES } });
  gIdp = stack.gateway; // real dev IdP, no domain rule, group rule on /admin/
});
after(async () => { await stopStack(stack); await op?.stop(); });

// ------------------------------------------------------------ email / domain
/**
 * The domain the README promises to compare: trailing dot dropped,
 * IDNA-mapped, lower case; null if not a domain. An address with blanks
 * around it is not one the provider verified as written: it is dropped,
 * never trimmed into another (account linking compares addresses exactly).
 */
function expectedDomain(email) {
  if (typeof email !== 'string' || email.trim() !== email) return null;
  const e = email;
  const at = e.indexOf('@');
  if (at <= 0 || e.indexOf('@', at + 1) >= 0) return null;
  const local = e.slice(0, at);
  if (/[\s<>,;"\x00-\x1f]/.test(local) || local.length > 64) return null;
  const raw = e.slice(at + 1).replace(/\.+$/, '');
  // WHATWG forbidden domain code points (and %: an email domain is not a URL host, nothing is decoded)
  if (!raw || /[\s\x00-\x1f#%/:<>?@[\\\]^|]/.test(raw)) return null;
  const d = domainToASCII(raw);
  return d && d.includes('.') && !/^[\d.]+$/.test(d) ? d.toLowerCase() : null;
}

const EMAILS = [
  'a@example.com', 'A@EXAMPLE.COM', 'a@Example.Com', 'a@example.com.', ' a@example.com ', 'a%40evil.test@example.com', 'a+tag@example.com',
  'a@evil.test@example.com', 'a@example.com@evil.test', '"a@evil.test"@example.com', 'a@@example.com', '@example.com', 'a@', 'a', '',
  'a@sub.example.com', 'a@example.com.evil.test', 'a@evil-example.com', 'a@example.co', 'a@xample.com', 'a@example.comm', 'a@examp1e.com',
  'a@ex\u0430mple.com', 'a@\u0435xample.com', 'a@xn--exmple-cua.com', 'a@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com', 'a@EXAMPLE\u3002com',
  'a@example.com%00', 'a@example.com\u0000', 'a@example.com,b@evil.test', 'a@example.com;b@evil.test',
  'a@example.com>', '<a@example.com>', 'a@[127.0.0.1]', 'a@127.0.0.1', 'a@localhost', 'a@example', 'a@example.com/evil.test', 'a@example.com\\@evil.test',
  'a@example.com#@evil.test', 'a@example.com?@evil.test', 'a@example.com:443', 'a @example.com', 'a\n@example.com', `${'a'.repeat(65)}@example.com`,
  `a@${'b'.repeat(250)}.com`,
];
const VERIFIED = [[true, true], ['true', true], ['TRUE', true], ['True', true], [false, false], ['false', false], [1, false], ['1', false], ['yes', false],
  [null, false], [undefined, false], [{}, false], [[true], false]];

test('domain rule: only a verified email at exactly the allowed domain signs in', async () => {
  const cases = [];
  for (const email of EMAILS) cases.push({ email, verified: true });
  for (const [v, ok] of VERIFIED) cases.push({ email: 'v@example.com', verified: v, verifiedOk: ok });
  for (const email of [['a@example.com'], 42, { address: 'a@example.com' }, null, undefined]) cases.push({ email, verified: true });
  const f = new Failures('email claims');
  await pool(cases, 6, async (c) => {
    const label = `email ${JSON.stringify(c.email)} verified ${JSON.stringify(c.verified)}`;
    const want = expectedDomain(c.email) === 'example.com' && (c.verifiedOk ?? true);
    const r = await validSignIn(gDom, t, { claims: { email: c.email, email_verified: c.verified } });
    if (want) {
      f.check(r.cb.status === 302 && issuesSession(r.cb), `${label}: should sign in, got ${r.cb.status}`);
    } else {
      f.check(r.cb.status === 403 && !issuesSession(r.cb), `${label}: should be refused (403), got ${r.cb.status}${issuesSession(r.cb) ? ' WITH A SESSION' : ''}`);
      f.check(/allowed email domains/.test(r.cb.body), `${label}: the page must name the rule`);
    }
  });
  f.done();
  console.log(`# ${cases.length} email claim variants`);
});

test('percent-escapes in an email domain are not decoded into an allowed domain', async () => {
  const f = new Failures('percent-escaped domains');
  for (const email of ['a@ex%61mple.com', 'a@example%2Ecom', 'a@%65xample.com', 'a@EXAMPLE%2ECOM']) {
    const r = await validSignIn(gDom, t, { claims: { email, email_verified: true } });
    f.check(r.cb.status === 403 && !issuesSession(r.cb), `email ${email}: ${r.cb.status}${issuesSession(r.cb) ? ' WITH A SESSION' : ''}, origin saw it as ${await emailSeen(r.jar)}`);
  }
  const r = await validSignIn(gOpen, t, { claims: { email: 'a@corp%2Eexample', email_verified: true } });
  const page = await request(`${gOpen.url}/corp/page`, { jar: r.jar });
  f.check(page.status === 403, `a@corp%2Eexample on /corp/ (corp.example only): ${page.status}`);
  f.done();
});

async function emailSeen(jar) {
  const who = await request(`${gDom.url}/.edgeauth/userinfo`, { jar, accept: 'application/json' });
  return who.status === 200 ? JSON.parse(who.body).email : '(no session)';
}

test('per-route domain rule: exact verified domain only, also for an existing session', async () => {
  const f = new Failures('per-route email rule');
  const cases = [['a@corp.example', true, true], ['a@CORP.EXAMPLE', true, true], ['a@corp.example', false, false], ['a@evil.corp.example', true, false],
    ['a@corp.example.evil.test', true, false], ['a@evil.test@corp.example', true, false], ['a@c\u043erp.example', true, false]];
  await pool(cases, 4, async ([email, verified, want]) => {
    const r = await validSignIn(gOpen, t, { claims: { email, email_verified: verified } });
    f.check(r.cb.status === 302, `${email}: sign-in ${r.cb.status}`);
    const page = await request(`${gOpen.url}/corp/page`, { jar: r.jar });
    f.check(page.status === (want ? 200 : 403), `${email} (verified ${verified}) on /corp/: ${page.status}`);
    const other = await request(`${gOpen.url}/elsewhere`, { jar: r.jar });
    f.check(other.status === 200, `${email}: other paths ${other.status}`);
  });
  f.done();
});

// ------------------------------------------------------------ groups
const GROUPS = [
  [['admins'], true], ['admins', true], [['users', 'admins'], true], [['x'.repeat(600), 'admins'], true],
  ['admins,devs', false], ['devs,admins', false], [['admins,devs'], false], [['Admins'], false], [['ADMINS'], false], [['admin'], false], [['admins2'], false],
  [[['admins']], false], [[{ name: 'admins' }], false], [[1], false], [1, false], [null, false], [{}, false], [{ admins: true }, false], [true, false],
  [['\u0430dmins'], false], [['admins\u0000'], false], [['adm\u0131ns'], false], [['\uff41dmins'], false], [[...Array.from({ length: 70 }, (_, i) => `g${i}`), 'admins'], false],
];

test('group rule: only the exact group opens /admin/; odd shapes never do', async () => {
  const f = new Failures('groups claims');
  await pool(GROUPS, 6, async ([groups, want]) => {
    const label = `groups ${JSON.stringify(groups).slice(0, 80)}`;
    const r = await validSignIn(gOpen, t, { claims: { groups } });
    f.check(r.cb.status === 302 && issuesSession(r.cb), `${label}: sign-in ${r.cb.status}`);
    const page = await request(`${gOpen.url}/admin/panel`, { jar: r.jar });
    f.check(page.status === (want ? 200 : 403), `${label}: /admin/ ${page.status}, want ${want ? 200 : 403}`);
  });
  f.done();
  console.log(`# ${GROUPS.length} groups claim shapes`);
});

test('the origin cannot read a group or identity the gateway did not grant', async () => {
  const f = new Failures('forwarded identity');
  const cases = [
    { groups: ['devs,admins'] }, { groups: ['devs, admins'] }, { groups: 'users,admins' }, { name: 'Alice\r\nX-Auth-Request-User: admin' },
    { sub: 'alice,admin' }, { email: 'a@example.com,root@example.com', email_verified: true }, { name: 'x'.repeat(600) },
  ];
  for (const claims of cases) {
    await stack.origin.reset();
    const r = await validSignIn(gOpen, t, { claims });
    if (r.cb.status !== 302) { f.check(r.cb.status === 502 || r.cb.status === 403, `${JSON.stringify(claims)}: ${r.cb.status}`); continue; }
    const page = await request(`${gOpen.url}/who`, { jar: r.jar });
    const [rec] = (await stack.origin.requests()).filter((x) => x.url === '/who');
    f.check(page.status === 200 && rec, `${JSON.stringify(claims)}: ${page.status}`);
    if (!rec) continue;
    const { payload } = await verifyAssertion(gOpen, stack.origin.url, rec.headers['x-edgeauth-assertion']);
    const header = (rec.headers['x-auth-request-groups'] || '').split(',').map((g) => g.trim()).filter(Boolean);
    const granted = payload.groups ?? [];
    f.check(header.every((g) => granted.includes(g)), `${JSON.stringify(claims)}: X-Auth-Request-Groups "${rec.headers['x-auth-request-groups']}" reads as ${JSON.stringify(header)}, the gateway granted ${JSON.stringify(granted)}`);
    f.check(!/admin/.test(rec.headers['x-auth-request-user'] || '') || claims.sub === 'alice,admin', `${JSON.stringify(claims)}: user header ${rec.headers['x-auth-request-user']}`);
    f.check(Object.keys(rec.headers).filter((k) => k === 'x-auth-request-user').length === 1, 'one user header');
  }
  f.done();
});

test('missing or unusable claims fail closed', async () => {
  const f = new Failures('missing claims');
  for (const [name, claims, gw, want] of [
    ['no email, domain rule', { email: undefined, email_verified: undefined }, gDom, 403],
    ['no sub', { sub: undefined }, gOpen, 502], ['empty sub', { sub: '' }, gOpen, 502], ['sub object', { sub: { id: 'x' } }, gOpen, 502],
    ['no groups, /admin/', { groups: undefined }, gOpen, 'admin403'],
  ]) {
    const r = await validSignIn(gw, t, { claims });
    if (want === 'admin403') {
      const page = await request(`${gw.url}/admin/x`, { jar: r.jar });
      f.check(page.status === 403, `${name}: /admin/ ${page.status}`);
    } else f.check(r.cb.status === want && !issuesSession(r.cb), `${name}: ${r.cb.status}`);
  }
  f.done();
});

test('real dev IdP users with hostile claims: same outcomes through node-oidc-provider', async () => {
  const gDomIdp = await stack.startGateway({ allowedEmailDomains: 'example.com', vars: { routes: ROUTES } });
  const f = new Failures('dev IdP users');
  const expect = { 'multi-at': false, unverified: false, cyrillic: false, upper: true, grpstring: true, grpcomma: true, verifiedstr: true };
  for (const [user, ok] of Object.entries(expect)) {
    const l = await login(gDomIdp, stack.idp, new CookieJar(), '/', { username: user, password: 'pw' });
    f.check(l.callback.status === (ok ? 302 : 403) && issuesSession(l.callback) === ok, `${user}: ${show(l.callback)}`);
  }
  // groups through the real IdP: "admins,devs" as one string is not admins; "admins" as a string is
  for (const [user, want] of [['grpstring', 403], ['grpcomma', 403], ['verifiedstr', 200], ['unverified', 200]]) {
    const jar = new CookieJar();
    const l = await login(gIdp, stack.idp, jar, '/', { username: user, password: 'pw' });
    f.check(l.callback.status === 302, `${user} at the open gateway: ${l.callback.status}`);
    const page = await request(`${gIdp.url}/admin/x`, { jar });
    f.check(page.status === want, `${user} /admin/: ${page.status}, want ${want}`);
  }
  f.done();
});
