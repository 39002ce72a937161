// scripts/demo: IdP + origin + gateway on the well-known ports, until Ctrl-C.
import { startIdp, startOrigin, startGateway, sessionKey, assertionKey } from './stack.mjs';
import fs from 'node:fs';
import path from 'node:path';
import { RUNTIME, SPIN_BIN } from './runtime.mjs';

const GW_PORT = Number(process.env.GATEWAY_PORT || 3000);
const gatewayUrl = `http://127.0.0.1:${GW_PORT}`;
const fromEnv = (name) => (process.env[name] ? [{ spec: process.env[name], kid: '(from env)' }] : undefined);
// The gateway's key-value data (uploaded rules, profiles, revocations):
// fresh and removed at every start, unless EDGEAUTH_DEMO_STATE names a
// directory to keep it in across restarts. Kept data is sealed with the
// session keys, so keep SPIN_VARIABLE_SESSION_KEYS fixed too.
const keptState = process.env.EDGEAUTH_DEMO_STATE ? path.resolve(process.env.EDGEAUTH_DEMO_STATE) : undefined;
if (keptState) fs.mkdirSync(keptState, { recursive: true });
// The demo sets where the IdP and origin are; every other SPIN_VARIABLE_* of
// the environment reaches the gateway as is (e.g. RULES, RULE_KEYS and
// ADMIN_TOKEN for tenant rules): say which.
const OWN = ['PUBLIC_URL', 'ORIGIN_URL', 'OIDC_ISSUER', 'OIDC_CLIENT_ID', 'OIDC_CLIENT_SECRET'].map((v) => `SPIN_VARIABLE_${v}`);
const passed = Object.keys(process.env).filter((k) => k.startsWith('SPIN_VARIABLE_') && !OWN.includes(k)).sort();

try {
  const [idp, origin] = await Promise.all([
    startIdp({ gatewayUrls: [gatewayUrl], port: Number(process.env.IDP_PORT || 9400), echo: true }),
    startOrigin({ port: Number(process.env.ORIGIN_PORT || 3001), echo: true }),
  ]);
  const gw = await startGateway({
    port: GW_PORT, originUrl: origin.url, issuer: idp.issuer, echo: true,
    sessionKeys: fromEnv('SPIN_VARIABLE_SESSION_KEYS') ?? [sessionKey('k1')],
    assertionKeys: fromEnv('SPIN_VARIABLE_ASSERTION_KEYS') ?? [assertionKey('ed25519', 'a1')],
    allowedEmailDomains: process.env.SPIN_VARIABLE_ALLOWED_EMAIL_DOMAINS ?? '',
    stateDir: keptState, keepState: Boolean(keptState),
  });
  for (const s of [idp, origin, gw]) {
    s.proc.exitPromise.then((x) => {
      console.error(`demo: ${s.proc.name} exited (${x.code ?? x.signal}); stopping. Log: ${s.proc.logFile}`);
      process.exit(1);
    });
  }
  console.log(`\nOpen ${gatewayUrl}/ — users alice/alice-pw and bob/bob-pw`);
  console.log(passed.length ? `Spin variables from the environment: ${passed.join(', ')}` : 'No SPIN_VARIABLE_* in the environment: the embedded defaults');
  console.log(keptState ? `Key-value data kept in ${keptState} (EDGEAUTH_DEMO_STATE)` : 'Key-value data starts empty and is removed at exit (uploaded rules too; EDGEAUTH_DEMO_STATE=DIR keeps it)');
  console.log(`(gateway under ${RUNTIME === 'spin' ? `Spin, ${SPIN_BIN}` : 'the edgeauth host'}; IdP ${idp.url}, origin ${origin.url}; Ctrl-C stops all)\n`);
} catch (e) {
  console.error(`demo: ${e.message}`);
  process.exit(1);
}
// Keep running; procs.mjs stops every service group on SIGINT/SIGTERM.
setInterval(() => {}, 1 << 30);
