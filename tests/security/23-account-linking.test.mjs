// Account linking is the account-takeover path (security-cases: identity
// confusion): with `account_linking = verified_email`, a new identity joins
// the profile that already has its email only if the provider says the email
// is verified, the connection is trusted to vouch for emails, and the address
// is exactly the same. Each attack signs in through a real provider as
// someone holding a look-alike of the victim's address and must end up in a
// profile of its own; the legitimate second way in joins the victim's.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CookieJar, request, setCookie, isClearing } from '../lib/http.mjs';
import { ENTERPRISE_USERS, startFederation, signInWith, connectionsFor, toCallback, loginUrl } from '../lib/federation.mjs';
import { originSaw, show } from '../lib/gateway-flow.mjs';

const VICTIM = 'dana@shared.example';
// The attacks' victim has no social identity yet (a profile with one from
// the same connection would refuse any other for that reason alone).
const TARGET = 'erin@shared.example';
const person = (email, emailVerified, name) => ({ password: 'pw', claims: { email, email_verified: emailVerified, name } });
// The enterprise provider knows the victim; the social one the attackers
// (and the victim's own social account, the legitimate link).
// With proof required: frank has the enterprise account; frank-social is
// his own social account, frank-evil an attacker's social account that the
// social provider (wrongly) says has frank's verified address; grace is the
// attacker's own enterprise account.
const FRANK = 'frank@shared.example';
const ENTERPRISE = {
  ...ENTERPRISE_USERS, dana: person(VICTIM, true, 'Dana'), erin: person(TARGET, true, 'Erin'),
  frank: person(FRANK, true, 'Frank'), grace: person('grace@shared.example', true, 'Grace'),
  hank: person('hank@shared.example', true, 'Hank'),
};
const LOOKALIKES = {
  unverified: person(TARGET, false, 'Mallory'),
  'string-false': person(TARGET, 'false', 'Mallory'),
  'upper-case': person('Erin@shared.example', true, 'Mallory'),
  'all-caps': person('ERIN@SHARED.EXAMPLE', true, 'Mallory'),
  plus: person('erin+x@shared.example', true, 'Mallory'),
  'cyrillic-e': person('\u0435rin@shared.example', true, 'Mallory'),
  'idn-lookalike': person('erin@sh\u0430red.example', true, 'Mallory'),
  'trailing-space': person('erin@shared.example ', true, 'Mallory'),
  'second-at': person('erin@shared.example@evil.example', true, 'Mallory'),
};
const SOCIAL = {
  ...LOOKALIKES,
  'dana-social': person(VICTIM, true, 'Dana'),
  'frank-social': person(FRANK, true, 'Frank'),
  'frank-evil': person(FRANK, true, 'Mallory'),
  'hank-social': person('hank@shared.example', true, 'Hank'),
};

let fed; let linking; let off; let proof;

before(async () => {
  fed = await startFederation({
    gateways: 3,
    connections: (f) => connectionsFor(f).map((c) => ({ ...c, trust_email: true })),
    vars: { account_linking: 'verified_email' },
    idpEnv: { social: { IDP_EXTRA_USERS: JSON.stringify(SOCIAL) }, enterprise: { IDP_USERS: JSON.stringify(ENTERPRISE) } },
  });
  linking = fed.gateway;
  off = await fed.startGateway({ vars: { account_linking: 'off' } });
  proof = await fed.startGateway({ vars: { account_linking: 'verified_email_with_proof' } });
});
after(() => fed?.stop());

let n = 0;
/** Signs in as `username` at connection `id` through `gw`; the profile id the origin then gets. */
async function profileOf(gw, id, username) {
  const jar = new CookieJar();
  const { callback } = await signInWith(fed, jar, id, { gw, username, password: 'pw' });
  assert.equal(callback.status, 302, `${id}/${username}: ${show(callback)}`);
  const path = `/who/${++n}`;
  const r = await request(`${gw.url}${path}`, { jar });
  assert.equal(r.status, 200, show(r));
  const [rec] = await originSaw(fed.origin, path);
  return { profile: rec.headers['x-auth-request-profile'], user: rec.headers['x-auth-request-user'] };
}

test('the same verified address from a second trusted connection joins the profile', async () => {
  const victim = await profileOf(linking, 'enterprise', 'dana');
  assert.match(victim.profile, /^p_/);
  assert.equal(victim.user, 'enterprise|dana');
  const social = await profileOf(linking, 'social', 'dana-social');
  assert.equal(social.user, 'social|dana-social', 'the connection subject stays its own');
  assert.equal(social.profile, victim.profile, 'linked: one profile for both ways in');
  // And again: still the one profile.
  assert.equal((await profileOf(linking, 'enterprise', 'dana')).profile, victim.profile);
});

test('look-alikes of the victim\'s address never join the victim\'s profile', async () => {
  const victim = (await profileOf(linking, 'enterprise', 'erin')).profile;
  const seen = new Set([victim]);
  for (const attacker of Object.keys(LOOKALIKES)) {
    const { profile } = await profileOf(linking, 'social', attacker);
    assert.match(profile ?? '', /^p_/, attacker);
    assert.notEqual(profile, victim, `${attacker} (${JSON.stringify(SOCIAL[attacker].claims)}) was linked to the victim`);
    assert.ok(!seen.has(profile), `${attacker} shares a profile with an earlier attacker`);
    seen.add(profile);
  }
});

test('with linking off, even the exact verified address stays a profile of its own', async () => {
  const victim = await profileOf(off, 'enterprise', 'dana');
  const social = await profileOf(off, 'social', 'dana-social');
  assert.notEqual(social.profile, victim.profile);
});

/** The profile id the origin gets for the session in `jar`. */
async function sessionProfile(gw, jar) {
  const path = `/who/${++n}`;
  const r = await request(`${gw.url}${path}`, { jar });
  assert.equal(r.status, 200, show(r));
  return (await originSaw(fed.origin, path))[0].headers['x-auth-request-profile'];
}

/** Signs in with `id` from a login URL with `params`; returns the callback's response. */
async function signInFrom(gw, jar, id, params, username) {
  const idp = id === 'enterprise' ? fed.enterprise : fed.social;
  const flow = await toCallback(jar, loginUrl(gw, { connection: id, ...params }), idp, { username, password: 'pw' });
  return request(flow.callbackUrl.href, { jar });
}

/** A social sign-in whose verified address a profile already has: the offer page. */
async function offered(jar, username) {
  const cb = await signInFrom(proof, jar, 'social', { rd: '/after' }, username);
  assert.equal(cb.status, 302, show(cb));
  assert.equal(new URL(cb.location, proof.url).pathname, '/.edgeauth/link', `${username}: the offer first`);
  const page = await request(`${proof.url}/.edgeauth/link`, { jar });
  assert.equal(page.status, 200, show(page));
  return page;
}

test('with proof required, a second way in joins only after the person signs in to the existing profile', async () => {
  const frank = (await profileOf(proof, 'enterprise', 'frank')).profile;

  // The attacker: a social account claiming frank's verified address gets a
  // profile of its own and the offer; proving with another enterprise
  // account (their own) links nothing.
  const evil = new CookieJar();
  const page = await offered(evil, 'frank-evil');
  assert.match(page.body, /frank@shared\.example/);
  assert.match(page.body, /Continue with Acme Corp SSO/);
  assert.match(page.body, /name="link" value="1"/);
  assert.doesNotMatch(page.body, /Continue with Social Login/);
  const evilProfile = await sessionProfile(proof, evil);
  assert.notEqual(evilProfile, frank, 'separate until proven');
  const wrong = await signInFrom(proof, evil, 'enterprise', { rd: '/after', link: '1' }, 'grace');
  assert.equal(wrong.status, 302, show(wrong));
  const grace = await sessionProfile(proof, evil);
  assert.notEqual(grace, frank);
  assert.equal((await profileOf(proof, 'social', 'frank-evil')).profile, evilProfile, 'still its own profile');
  assert.notEqual((await profileOf(proof, 'enterprise', 'frank')).profile, evilProfile);

  // Frank's own social account: offered too. Signing in to the enterprise
  // account without coming from the offer page proves nothing.
  const jar = new CookieJar();
  await offered(jar, 'frank-social');
  const separate = await sessionProfile(proof, jar);
  assert.notEqual(separate, frank);
  const plain = await signInFrom(proof, jar, 'enterprise', { rd: '/plain' }, 'frank');
  assert.equal(new URL(plain.location, proof.url).pathname, '/plain', show(plain));
  assert.equal((await profileOf(proof, 'social', 'frank-social')).profile, separate, 'not linked by a plain sign-in');

  // From the offer page: linked, and the browser goes on where it was going.
  const proven = await signInFrom(proof, jar, 'enterprise', { rd: '/after', link: '1' }, 'frank');
  assert.equal(proven.status, 302, show(proven));
  assert.equal(new URL(proven.location, proof.url).pathname, '/after');
  assert.ok(isClearing(setCookie(proven, 'edgeauth_link')), 'the offer is spent');
  assert.equal(await sessionProfile(proof, jar), frank);
  assert.equal((await profileOf(proof, 'social', 'frank-social')).profile, frank, 'one profile for both ways in');
  assert.equal((await profileOf(proof, 'social', 'frank-evil')).profile, evilProfile, 'the attacker stays apart');
});

test('"not now" goes on without linking; without an offer the page sends you home', async () => {
  const jar = new CookieJar();
  const home = await request(`${proof.url}/.edgeauth/link`, { jar });
  assert.equal(home.status, 302);
  assert.equal(new URL(home.location, proof.url).pathname, '/');
  await profileOf(proof, 'enterprise', 'hank');
  await offered(jar, 'hank-social');
  const skip = await request(`${proof.url}/.edgeauth/link?skip=1`, { jar });
  assert.equal(skip.status, 302);
  assert.equal(new URL(skip.location, proof.url).pathname, '/after');
  assert.equal((await request(`${proof.url}/.edgeauth/link`, { jar })).status, 302, 'the offer is gone');
  const hank = (await profileOf(proof, 'enterprise', 'hank')).profile;
  assert.notEqual(await sessionProfile(proof, jar), hank, 'a separate account, as chosen');
});
