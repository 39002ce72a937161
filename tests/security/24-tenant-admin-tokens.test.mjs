// Tenant-scoped admin credentials (security-cases: broken access control
// across tenants). A tenant's document lists the SHA-256 of its own admin
// tokens (`admin_token_sha256`); such a token opens that tenant's profiles
// API and nothing else. The attacks: tenant A's token on every profiles
// endpoint of tenant B (B must answer exactly as for a token that is no
// one's, and B's data must be unchanged), on a tenant that does not exist
// (the same answer: nothing tells whether it exists), on the operator's
// endpoints (tenant documents, rule artifacts, the events drain), and
// near-misses of A's token (whitespace, case, prefix, the hash itself).
// Tenant `acme` comes from the `tenants` variable, `globex` is a KV tenant
// document put through the admin API: both ways of configuring a tenant.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import crypto from 'node:crypto';
import { CookieJar, request, rawRequest } from '../lib/http.mjs';
import { freePort } from '../lib/procs.mjs';
import { HOST_BIN, startIdp, startOrigin, startGateway } from '../lib/stack.mjs';
import { loginOk, originSaw, show } from '../lib/gateway-flow.mjs';
import { readKv } from '../lib/kv.mjs';

const token = () => crypto.randomBytes(24).toString('base64url');
const sha256 = (s) => crypto.createHash('sha256').update(s).digest('hex');
const OPERATOR = token();
const ACME = token();
const ACME_OLD = token(); // a second (rotating) token of acme
const GLOBEX = token();
// Hashed the way `echo "$TOKEN" | sha256sum` does: with a trailing newline.
const ECHOED = token();

let idp; let origin; let gw; let acme; let globex;
const ids = {};

const call = (site, method, target, tok, body) => rawRequest(site.url, {
  method,
  target,
  headers: [
    ...(tok === null ? [] : [['Authorization', tok.startsWith('raw:') ? tok.slice(4) : `Bearer ${tok}`]]),
    ...(body === undefined ? [] : [['Content-Type', 'application/json']]),
  ],
  body: body === undefined ? null : (typeof body === 'string' ? body : JSON.stringify(body)),
}).then((r) => ({ ...r, json: () => JSON.parse(r.body) }));
const profiles = (method, path, tok, body) => call(acme, method, `/.edgeauth/admin/profiles${path}`, tok, body);

let seq = 0;
async function signIn(site, username) {
  const jar = new CookieJar();
  await loginOk(site, idp, jar, '/start', { username });
  const p = `/who/${++seq}`;
  const r = await request(`${site.url}${p}`, { jar });
  assert.equal(r.status, 200, show(r));
  const [rec] = await originSaw(origin, p);
  return rec.headers['x-auth-request-profile'];
}

/** Every stored value of tenant `t` (its profiles, indexes, list, records). */
const dataOf = (t) => Object.fromEntries(Object.entries(readKv(gw.stateDir)).filter(([k]) => k.includes(`:${t}:`) || k.endsWith(`:${t}`)));

before(async () => {
  const port = await freePort('127.0.0.1');
  acme = { url: `http://127.0.0.1:${port}` };
  globex = { url: `http://localhost:${port}` };
  [idp, origin] = await Promise.all([startIdp({ gatewayUrls: [acme.url, globex.url] }), startOrigin()]);
  gw = await startGateway({
    port, originUrl: origin.url, issuer: idp.issuer,
    vars: {
      admin_token: OPERATOR,
      tenant_store: 'kv',
      tenants: JSON.stringify({
        acme: { public_url: acme.url, name: 'Acme', admin_token_sha256: [sha256(ACME_OLD), sha256(ACME), sha256(`${ECHOED}\n`)] },
      }),
    },
  });
  const put = await call(acme, 'PUT', '/.edgeauth/admin/tenants/globex', OPERATOR,
    { public_url: globex.url, name: 'Globex', admin_token_sha256: [sha256(GLOBEX)] });
  assert.equal(put.status, 201, put.body);
  ids.acmeAlice = await signIn(acme, 'alice');
  ids.globexAlice = await signIn(globex, 'alice');
  ids.globexBob = await signIn(globex, 'bob');
});
after(async () => {
  await Promise.all([gw?.stop(), idp?.stop(), origin?.stop()]);
});

test('a tenant document\'s token hashes are checked for form, naming the field', async () => {
  for (const [hashes, field] of [
    [[sha256(GLOBEX).toUpperCase()], 'admin_token_sha256[0]'],
    [[sha256(GLOBEX), sha256(GLOBEX).slice(2)], 'admin_token_sha256[1]'],
    [sha256(GLOBEX), 'admin_token_sha256'],
    [[GLOBEX], 'admin_token_sha256[0]'],
  ]) {
    const r = await call(acme, 'PUT', '/.edgeauth/admin/tenants/globex', OPERATOR,
      { public_url: globex.url, admin_token_sha256: hashes });
    assert.equal(r.status, 400, r.body);
    assert.equal(r.json().field, field, r.body);
    assert.match(r.json().message, /SHA-256|hash/);
  }
  // The refused documents changed nothing: globex's token still works.
  assert.equal((await profiles('GET', `/globex/${ids.globexAlice}`, GLOBEX)).status, 200);
});

test('a tenant\'s token reads and manages its own tenant\'s profiles', async () => {
  for (const tok of [ACME, ACME_OLD]) {
    let r = await profiles('GET', `/acme/${ids.acmeAlice}`, tok);
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json().id, ids.acmeAlice);
    r = await profiles('GET', '/acme?email=alice%40example.com', tok);
    assert.equal(r.json().id, ids.acmeAlice);
    r = await profiles('GET', '/acme?limit=10', tok);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.split('\n').filter(Boolean).map((l) => JSON.parse(l).id), [ids.acmeAlice],
      'acme\'s export holds acme\'s profiles only');
  }
  const r = await profiles('PATCH', `/acme/${ids.acmeAlice}`, ACME, { app_metadata: { plan: 'gold' } });
  assert.equal(r.status, 200, r.body);
  const g = await profiles('GET', `/globex/${ids.globexAlice}`, GLOBEX);
  assert.equal(g.status, 200, `the KV tenant's own token: ${g.body}`);
});

// Every profiles endpoint of a tenant, against profile ids that exist there
// (the import: a new profile claiming the tenant's alice).
const endpointsOf = (t, id, other) => [
  ['GET', `/${t}/${id}`],
  ['GET', `/${t}?email=alice%40example.com`],
  ['GET', `/${t}?connection=default&subject=alice`],
  ['GET', `/${t}`],
  ['GET', `/${t}?cursor=1&limit=500`],
  ['PATCH', `/${t}/${id}`, { app_metadata: { owned: true } }],
  ['DELETE', `/${t}/${id}`],
  ['DELETE', `/${t}/${id}/identities/default/alice`],
  ['DELETE', `/${t}/${id}/sessions`],
  ['POST', `/${t}/${id}/merge`, { from: other }],
  ['POST', `/${t}/${id}/merge`, 'not json'],
  ['PUT', `/${t}/${id}`],
  // A profile that would take alice's identity and email there.
  ['POST', `/${t}/import`, JSON.stringify({
    id: `p_${'q'.repeat(26)}`, created_at: 1, logins: 1,
    identities: [{ connection: 'default', subject: 'alice', claims: {}, linked_at: 1 }],
    emails: [{ address: 'alice@example.com', verified: true, connection: 'default' }],
    first_login: { at: 1, connection: 'default' }, last_login: { at: 1, connection: 'default' },
  })],
];

test('another tenant\'s token gets 401 on every profiles endpoint, and changes nothing there', async () => {
  const before = dataOf('globex');
  assert.ok(Object.keys(before).some((k) => k.startsWith('profile:globex:')), 'globex has profiles to protect');
  const answers = new Set();
  for (const tok of [ACME, ACME_OLD]) {
    for (const [method, path, body] of endpointsOf('globex', ids.globexAlice, ids.globexBob)) {
      const r = await profiles(method, path, tok, body);
      assert.equal(r.status, 401, `${method} ${path} with acme's token: ${r.body}`);
      assert.equal(r.header('www-authenticate'), 'Bearer');
      assert.ok(!r.body.includes(ids.globexAlice) && !r.body.includes('alice@'), `${method} ${path} leaks: ${r.body}`);
      answers.add(`${r.status} ${r.body}`);
    }
  }
  // A tenant that does not exist answers the same: nothing tells whether it exists.
  for (const [method, path, body] of endpointsOf('initech', ids.globexAlice, ids.globexBob)) {
    const r = await profiles(method, path, ACME, body);
    answers.add(`${r.status} ${r.body}`);
  }
  // ... and so does the operator's answer to a token that is no one's.
  answers.add(`${(await profiles('GET', `/globex/${ids.globexAlice}`, token())).status} ${(await profiles('GET', `/globex/${ids.globexAlice}`, token())).body}`);
  assert.equal(answers.size, 1, [...answers].join('\n'));
  assert.deepEqual(dataOf('globex'), before, 'globex\'s data is unchanged');
  // The other way round too.
  for (const [method, path, body] of endpointsOf('acme', ids.acmeAlice, ids.acmeAlice)) {
    const r = await profiles(method, path, GLOBEX, body);
    assert.equal(r.status, 401, `${method} ${path} with globex's token`);
  }
  assert.equal((await profiles('GET', `/globex/${ids.globexAlice}`, OPERATOR)).json().app_metadata.owned, undefined);
});

test('a tenant\'s token opens none of the operator\'s endpoints', async () => {
  for (const [site, method, target, body] of [
    [acme, 'GET', '/.edgeauth/admin/tenants'],
    [acme, 'GET', '/.edgeauth/admin/tenants/acme'],
    [acme, 'GET', '/.edgeauth/admin/tenants/globex'],
    [acme, 'PUT', '/.edgeauth/admin/tenants/globex', { public_url: globex.url, admin_token_sha256: [sha256(ACME)] }],
    [acme, 'POST', '/.edgeauth/admin/tenants/acme2/_validate', { public_url: 'http://acme2.example' }],
    [acme, 'DELETE', '/.edgeauth/admin/tenants/globex'],
    [acme, 'GET', '/.edgeauth/admin/rules/acme'],
    [acme, 'POST', '/.edgeauth/admin/events/drain'],
    [globex, 'POST', '/.edgeauth/admin/events/drain'],
  ]) {
    for (const tok of [ACME, GLOBEX]) {
      const r = await call(site, method, target, tok, body);
      assert.equal(r.status, 401, `${method} ${site.url}${target} with a tenant token: ${r.status} ${r.body}`);
    }
  }
  // globex's document (and with it its tokens) is as it was.
  const doc = (await call(acme, 'GET', '/.edgeauth/admin/tenants/globex', OPERATOR)).json();
  assert.deepEqual(doc.admin_token_sha256, [sha256(GLOBEX)]);
});

test('only the exact token opens: whitespace, case, a prefix or the hash itself do not', async () => {
  const target = `/acme/${ids.acmeAlice}`;
  assert.equal((await profiles('GET', target, ACME)).status, 200);
  const near = [
    `raw:Bearer ${ACME} x`, // an extra word after it
    `raw:Bearer  ${ACME}`, // two spaces: the token starts with one
    ACME.toUpperCase(),
    ACME.toLowerCase() === ACME ? `${ACME}A` : ACME.toLowerCase(),
    ACME.slice(0, -1),
    `${ACME}=`,
    sha256(ACME),
    `raw:bearer ${ACME}`,
    `raw:${ACME}`,
    `raw:Basic ${Buffer.from(`acme:${ACME}`).toString('base64')}`,
  ];
  for (const tok of near) {
    const r = await profiles('GET', target, tok);
    assert.equal(r.status, 401, `${JSON.stringify(tok)} opened acme's profiles`);
  }
  // A hash of the token with trailing whitespace (`echo` adds a newline) is
  // another token's: the token as sent does not open.
  for (const tok of [ECHOED, `raw:Bearer ${ECHOED} `]) {
    assert.equal((await profiles('GET', target, tok)).status, 401, `${JSON.stringify(tok)} opened with a hash of token + newline`);
  }
  // Spaces and tabs after a header value are not part of it (RFC 9110
  // §5.5): both runtimes' HTTP servers strip them before the gateway sees
  // the field, so `Bearer <token> ` arrives as the exact token. (The gateway
  // itself never trims a tenant token: gateway/core/src/admin.rs tests.)
  assert.equal((await profiles('GET', target, `raw:Bearer ${ACME} `)).status, 200);
  assert.equal((await profiles('GET', target, `raw:Bearer ${ACME}\t`)).status, 200);
  assert.equal((await profiles('GET', target, null)).status, 401);
});

test('the CLI works with a tenant\'s token, for that tenant only', async () => {
  const cli = (tok, args) => promisify(execFile)(HOST_BIN, ['profiles', ...args], {
    env: { ...process.env, EDGEAUTH_GATEWAY: acme.url, EDGEAUTH_ADMIN_TOKEN: tok }, encoding: 'utf8',
  });
  const own = JSON.parse((await cli(GLOBEX, ['get', 'globex', ids.globexAlice])).stdout);
  assert.equal(own.id, ids.globexAlice);
  const lines = (await cli(GLOBEX, ['export', 'globex'])).stdout.split('\n').filter(Boolean);
  assert.ok(lines.length >= 2);
  await assert.rejects(cli(GLOBEX, ['export', 'acme']), (e) => /HTTP 401/.test(e.stderr));
  await assert.rejects(cli(GLOBEX, ['get', 'acme', ids.acmeAlice]), (e) => /HTTP 401/.test(e.stderr));
});

test('the operator\'s token still opens every tenant\'s profiles', async () => {
  for (const [t, id] of [['acme', ids.acmeAlice], ['globex', ids.globexAlice]]) {
    let r = await profiles('GET', `/${t}/${id}`, OPERATOR);
    assert.equal(r.status, 200, r.body);
    r = await profiles('GET', `/${t}?limit=50`, OPERATOR);
    assert.equal(r.status, 200);
    assert.ok(r.body.includes(id));
  }
  const none = await profiles('GET', `/initech/${ids.acmeAlice}`, OPERATOR);
  assert.equal(none.status, 404, 'the operator may learn that a tenant does not exist');
  assert.match(none.json().message, /no tenant `initech`/);
  const r = await profiles('POST', `/globex/${ids.globexAlice}/merge`, OPERATOR, { from: ids.globexBob });
  assert.equal(r.status, 200, r.body);
  assert.equal((await profiles('GET', `/globex/${ids.globexBob}`, GLOBEX)).status, 404);
});
