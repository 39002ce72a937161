// The gateway with IdP clients that sign id tokens with EdDSA and ES256.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CookieJar, request } from '../lib/http.mjs';
import { startStack, stopStack } from '../lib/stack.mjs';
import { show, loginOk, originSaw, verifyAssertion } from '../lib/gateway-flow.mjs';

let stack;

before(async () => {
  stack = await startStack({ gateways: 2, gatewayOptions: { clientId: 'edgeauth-eddsa' } });
});
after(() => stopStack(stack));

async function signInAndCheck(gw) {
  const { idp, origin } = stack;
  const jar = new CookieJar();
  await loginOk(gw, idp, jar, '/variant');
  await origin.reset();
  const r = await request(`${gw.url}/variant`, { jar });
  assert.equal(r.status, 200, show(r));
  const [rec] = await originSaw(origin, '/variant');
  const { payload } = await verifyAssertion(gw, origin.url, rec.headers['x-edgeauth-assertion']);
  assert.equal(payload.sub, 'alice');
  assert.deepEqual(payload.groups, ['admins', 'devs']);
}

test('EdDSA (Ed25519) id tokens, client_secret_basic', async () => {
  await signInAndCheck(stack.gateways[0]);
});

// The client is registered for client_secret_post; node-oidc-provider also takes basic.
test('ES256 id tokens (client edgeauth-es256)', async () => {
  const gw = await stack.startGateway({ clientId: 'edgeauth-es256' });
  await signInAndCheck(gw);
});
