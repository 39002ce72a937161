// Spin's static variables provider in the runtime config file
// (`[[variables_provider]] type = "static"`), which the README recommends for
// production under Spin (each variable lookup through the environment
// provider costs a blocking handoff per request; bench/README.md): the same
// file must configure `spin up` and `edgeauth up` alike, with the same
// precedence between the file and SPIN_VARIABLE_* (whatever Spin does, the
// host does: this test is the check), and anything the host cannot honour is
// refused at startup by name.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from '../lib/http.mjs';
import { startStack, stopStack } from '../lib/stack.mjs';
import { RUNTIME } from '../lib/runtime.mjs';

let stack;
const open = (p) => JSON.stringify([{ path: p, public: true }]);
const staticFile = (values) => `[[variables_provider]]\ntype = "static"\nvalues = { ${
  Object.entries(values).map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join(', ')} }\n`;

before(async () => {
  stack = await startStack({ gateways: 3 }); // the first, plain, is started by startStack
});

after(async () => {
  if (stack) await stopStack(stack);
});

/** 200 from the origin without a session: the path is public on `gw`. */
async function isPublic(gw, p) {
  const r = await request(`${gw.url}${p}`);
  if (r.status === 200) return true;
  assert.equal(r.status, 302, `${p}: expected the origin's page or a login redirect, got ${r.status}`);
  return false;
}

test('a variable from the static provider configures the gateway', async () => {
  const gw = await stack.startGateway({ runtimeConfig: staticFile({ routes: open('/from-file/') }) });
  assert.equal(await isPublic(gw, '/from-file/page'), true, 'the file\'s routes apply');
  assert.equal(await isPublic(gw, '/other'), false);
});

test('the file and SPIN_VARIABLE_* take precedence as under Spin', async () => {
  const gw = await stack.startGateway({
    runtimeConfig: staticFile({ routes: open('/from-file/') }),
    vars: { routes: open('/from-env/') },
  });
  const file = await isPublic(gw, '/from-file/page');
  const env = await isPublic(gw, '/from-env/page');
  assert.notEqual(file, env, 'exactly one of the two values is in force');
  // Spin 4.1 asks the runtime config's providers before its environment
  // provider; the host must do the same (under the host this is the check).
  assert.equal(file, true, `${RUNTIME}: the static provider's value wins over SPIN_VARIABLE_ROUTES`);
});
