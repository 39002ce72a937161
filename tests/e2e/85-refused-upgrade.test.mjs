// A request asking to switch protocols (`Upgrade: websocket`) is refused like
// any other unauthenticated request, and the client gets that answer whole:
// the gateway never switches protocols, so it must close such a connection as
// it closes the others, never with a reset that can destroy the response the
// client has not read yet (CI once saw exactly that: ECONNRESET instead of 401
// for a PATCH with Upgrade headers and a body). The body is larger than a
// socket buffer, so a server that drops the connection without reading it
// resets it every time; each request closes its own connection.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, stopStack } from '../lib/stack.mjs';
import { rawRequest } from '../lib/http.mjs';
import { spinDefect } from '../lib/runtime.mjs';

let stack;
before(async () => { stack = await startStack({}); });
after(() => stopStack(stack));

const UPGRADE = [['Upgrade', 'websocket'], ['Connection', 'Upgrade'], ['Sec-WebSocket-Version', '13'],
  ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ==']];

test('refused upgrade requests with an unread body get their 401, never a reset', spinDefect('upgradeReset'), async () => {
  const body = 'x'.repeat(256 * 1024);
  const outcomes = {};
  const one = async () => {
    let key;
    try {
      const r = await rawRequest(stack.gateway.url, { method: 'PATCH', target: '/private', body,
        headers: [['Accept', 'text/html'], ...UPGRADE] });
      key = String(r.status);
    } catch (e) {
      key = `error: ${e.code || e.message}`;
    }
    outcomes[key] = (outcomes[key] || 0) + 1;
  };
  for (let round = 0; round < 40; round++) await Promise.all([1, 2, 3, 4].map(one));
  assert.deepEqual(outcomes, { 401: 160 }, `outcomes of 160 refused upgrades: ${JSON.stringify(outcomes)}`);
});

test('a GET asking for a websocket is sent to sign in, with the whole page', async () => {
  const r = await rawRequest(stack.gateway.url, { target: '/chat', headers: [['Accept', 'text/html'], ...UPGRADE] });
  assert.equal(r.status, 302);
  assert.equal(new URL(r.header('location'), stack.gateway.url).pathname, '/.edgeauth/login');
  assert.notEqual(r.header('upgrade'), 'websocket', 'no protocol switch is offered');
});
