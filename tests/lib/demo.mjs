// scripts/demo: IdP + origin + gateway on the well-known ports, until Ctrl-C.
import { startIdp, startOrigin, startGateway, sessionKey, assertionKey } from './stack.mjs';
import { RUNTIME, SPIN_BIN } from './runtime.mjs';

const GW_PORT = Number(process.env.GATEWAY_PORT || 3000);
const gatewayUrl = `http://127.0.0.1:${GW_PORT}`;
const fromEnv = (name) => (process.env[name] ? [{ spec: process.env[name], kid: '(from env)' }] : undefined);

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
  });
  for (const s of [idp, origin, gw]) {
    s.proc.exitPromise.then((x) => {
      console.error(`demo: ${s.proc.name} exited (${x.code ?? x.signal}); stopping. Log: ${s.proc.logFile}`);
      process.exit(1);
    });
  }
  console.log(`\nOpen ${gatewayUrl}/ — users alice/alice-pw and bob/bob-pw`);
  console.log(`(gateway under ${RUNTIME === 'spin' ? `Spin, ${SPIN_BIN}` : 'the edgeauth host'}; IdP ${idp.url}, origin ${origin.url}; Ctrl-C stops all)\n`);
} catch (e) {
  console.error(`demo: ${e.message}`);
  process.exit(1);
}
// Keep running; procs.mjs stops every service group on SIGINT/SIGTERM.
setInterval(() => {}, 1 << 30);
