// Run by tests/e2e/95-js-rules in its own Node process (the SDK replaces
// globals): prints what the SDK does with the host's clock and randomness,
// with a rule that throws, and what testing.mjs makes of an event file, as
// JSON. The host is testing.mjs' stand-in (importing it puts it in place).
// Not under test/: a rule made by `rule new --lang js` links this directory
// as `sdk`, and `node --test` there would run anything under sdk/test/.

import { host, toEvent, run } from './testing.mjs';

let counter = 0;
host.now = 1796000000123n;
// Deterministic "randomness" the test can recognise: 1, 2, 3, ...
host.randomBytes = (len) => Uint8Array.from({ length: len }, () => (++counter) & 0xff);
const BuildDate = Date;
const sdk = await import('./index.js');

const out = {};
out.dateNow = Date.now();
out.newDate = new Date().getTime();
out.epoch = new Date(0).toISOString();
out.parsed = new Date('2020-01-02T03:04:05Z').getTime();
out.isDate = new Date() instanceof BuildDate;
counter = 0;
out.random = [Math.random(), Math.random()];
counter = 0;
out.getRandomValues = Array.from(crypto.getRandomValues(new Uint8Array(3)));
counter = 0;
out.big = crypto.getRandomValues(new Uint8Array(2500)).length;

const event = {
  tenantId: 't', ruleName: 'r', config: '{"x":1}',
  user: { sub: 'u', email: 'A@Example.COM', emailVerified: true, groups: [], identities: [{ connection: 'c', userId: 'i', profile: '{"p":2}' }], appMetadata: '{}', userMetadata: '{"company":"Acme"}' },
  connection: { id: 'c', kind: 'oidc', displayName: 'C' }, request: { host: 'h', path: '/', method: 'GET', acceptedLanguages: [] },
  transaction: { firstLogin: false, loginCount: 3n, returnUrl: '/', correlationId: 'id', reauthenticated: false, resumed: [['company', 'Beta']] },
  secrets: [{ name: 's', value: 'v' }],
};
const seen = {};
const ok = sdk.defineRule((login) => {
  Object.assign(seen, { config: login.config, domain: login.verifiedEmailDomain(), count: login.transaction.loginCount, meta: login.user.userMetadata, profile: login.user.identities[0].profile, resumed: login.resumed('company'), secret: login.secrets.s });
  return [sdk.deny('no')];
});
out.commands = ok.onLogin(event);
out.seen = seen;
const thrown = (fn) => {
  try {
    sdk.defineRule(fn).onLogin(event);
  } catch (e) {
    return e;
  }
  return null;
};
out.throwsError = thrown(() => { throw new TypeError('bad domain'); });
out.throwsString = thrown(() => { throw 'plain'; });
out.notArray = thrown(() => 'yes');
// An event file as `rule test --event` reads it, lowered as the gateway does.
const lowered = toEvent({ user: { sub: 'u', email_verified: true, app_metadata: { a: 1 } }, connection: { kind: 'saml' }, transaction: { login_count: 4 }, secrets: { b: '2', a: '1' } });
out.lowered = { ...lowered, transaction: { ...lowered.transaction, loginCount: String(lowered.transaction.loginCount) } };
out.typo = (() => {
  try {
    toEvent({ user: { emailVerified: true } });
  } catch (e) {
    return e.message;
  }
  return null;
})();
out.run = run(sdk.defineRule((login) => {
  sdk.log('info', `hello ${login.user.sub}`);
  return [sdk.setClaim('https://example.com/now', Date.now())];
}), lowered, { nowMs: 5 });
console.log(JSON.stringify(out, (k, v) => (v === undefined ? null : v)));
