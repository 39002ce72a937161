// Run by tests/e2e/95-js-rules in its own Node process (the SDK replaces
// globals): prints what the SDK does with the host's clock and randomness,
// and with a rule that throws, as JSON.

let counter = 0;
globalThis.hostMock = {
  now: 1796000000123n,
  logs: [],
  // Deterministic "randomness" the test can recognise: 1, 2, 3, ...
  bytes: (len) => Uint8Array.from({ length: len }, () => (++counter) & 0xff),
};
const BuildDate = Date;
const sdk = await import('../index.js');

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
console.log(JSON.stringify(out));
