// Tenant rules for tests outside 95-rules: a fresh signing key, artifacts
// built from the example rules (built by scripts/test for
// wasm32-unknown-unknown), the gateway variables that enable them, and the
// upload through the admin endpoint.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from './procs.mjs';
import { HOST_BIN } from './stack.mjs';

const TARGET = path.resolve(ROOT, process.env.CARGO_TARGET_DIR || 'target');
// Asynchronous: a synchronous child would stop this process from draining
// the gateways' log pipes.
const run = promisify(execFile);

async function cli(args, env = {}) {
  return (await run(HOST_BIN, args, { env: { ...process.env, ...env }, encoding: 'utf8' })).stdout;
}

/**
 * Keys and artifacts for `rules` ({ name: crate }, e.g. { profile:
 * 'progressive_profile' }); `vars(chain)` gives the Spin variables of a
 * tenant `default` with that chain, `upload(gw)` stores every artifact.
 */
export async function prepareRules(rules) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'edgeauth-rules-'));
  const adminToken = crypto.randomBytes(18).toString('base64url');
  const lines = (await cli(['rule', 'keygen', '--kid', 'test1'])).split('\n').filter((l) => l && !l.startsWith('#'));
  const key = { secret: lines[0], public: lines[1] };
  const artifacts = {};
  for (const [name, crate] of Object.entries(rules)) {
    const wasm = path.join(TARGET, 'wasm32-unknown-unknown', 'release', `rule_${crate}.wasm`);
    const out = path.join(tmp, `${name}.rule`);
    await cli(['rule', 'build', wasm, '--name', name, '-o', out], { EDGEAUTH_RULE_SIGNING_KEY: key.secret });
    artifacts[name] = out;
  }
  return {
    vars: (chain, extra = {}) => ({
      rules: JSON.stringify({ tenants: { default: { chain } } }),
      rule_keys: key.public,
      admin_token: adminToken,
      ...extra,
    }),
    async upload(gw) {
      for (const file of Object.values(artifacts)) {
        await cli(['rule', 'upload', file, '--gateway', gw.url], { EDGEAUTH_ADMIN_TOKEN: adminToken });
      }
    },
    cleanup: () => fs.rmSync(tmp, { recursive: true, force: true }),
  };
}
