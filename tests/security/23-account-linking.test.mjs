// Account linking is the account-takeover path (security-cases: identity
// confusion): with `account_linking = verified_email`, a new identity joins
// the profile that already has its email only if the provider says the email
// is verified, the connection is trusted to vouch for emails, and the address
// is exactly the same. Each attack signs in through a real provider as
// someone holding a look-alike of the victim's address and must end up in a
// profile of its own; the legitimate second way in joins the victim's.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CookieJar, request } from '../lib/http.mjs';
import { ENTERPRISE_USERS, startFederation, signInWith, connectionsFor } from '../lib/federation.mjs';
import { originSaw, show } from '../lib/gateway-flow.mjs';

const VICTIM = 'dana@shared.example';
// The attacks' victim has no social identity yet (a profile with one from
// the same connection would refuse any other for that reason alone).
const TARGET = 'erin@shared.example';
const person = (email, emailVerified, name) => ({ password: 'pw', claims: { email, email_verified: emailVerified, name } });
// The enterprise provider knows the victim; the social one the attackers
// (and the victim's own social account, the legitimate link).
const ENTERPRISE = { ...ENTERPRISE_USERS, dana: person(VICTIM, true, 'Dana'), erin: person(TARGET, true, 'Erin') };
const SOCIAL = {
  'dana-social': person(VICTIM, true, 'Dana'),
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

let fed; let linking; let off;

before(async () => {
  fed = await startFederation({
    gateways: 2,
    connections: (f) => connectionsFor(f).map((c) => ({ ...c, trust_email: true })),
    vars: { account_linking: 'verified_email' },
    idpEnv: { social: { IDP_EXTRA_USERS: JSON.stringify(SOCIAL) }, enterprise: { IDP_USERS: JSON.stringify(ENTERPRISE) } },
  });
  linking = fed.gateway;
  off = await fed.startGateway({ vars: { account_linking: 'off' } });
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
  for (const attacker of Object.keys(SOCIAL).filter((u) => u !== 'dana-social')) {
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
