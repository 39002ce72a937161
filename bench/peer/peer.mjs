// The benchmark's peer: what a Node user would pick instead of edgeauth.
// Auth0's express-openid-connect session middleware (its defaults: encrypted
// stateless appSession cookie, rolling sessions) in front of a reverse proxy
// (http-proxy-middleware), doing the same work as the gateway on each request:
// one allowed email domain, identity headers, a signed EdDSA assertion, the
// session cookie withheld from the origin.
//
// env: PEER_PORT, PEER_URL, ISSUER, ORIGIN_URL, PEER_SECRET, ALLOWED_DOMAIN,
//      CLIENT_ID, CLIENT_SECRET

import crypto from 'node:crypto';
import express from 'express';
import eoc from 'express-openid-connect';
import { createProxyMiddleware } from 'http-proxy-middleware';
import { SignJWT } from 'jose';

const env = (k, d) => process.env[k] ?? d ?? (() => { throw new Error(`${k} is required`); })();
const port = Number(env('PEER_PORT'));
const baseURL = env('PEER_URL');
const originUrl = env('ORIGIN_URL');
const allowedDomain = env('ALLOWED_DOMAIN', 'example.com');
const signingKey = crypto.generateKeyPairSync('ed25519').privateKey;

const app = express();
app.disable('x-powered-by');
app.use(eoc.auth({
  issuerBaseURL: env('ISSUER'),
  baseURL,
  clientID: env('CLIENT_ID', 'edgeauth'),
  clientSecret: env('CLIENT_SECRET', 'edgeauth-dev-secret'),
  secret: env('PEER_SECRET'),
  authRequired: true,
  idpLogout: false,
  // The dev IdP registers `<url>/.edgeauth/callback` and requires the code flow with PKCE.
  routes: { callback: '/.edgeauth/callback' },
  authorizationParams: { response_type: 'code', response_mode: 'query', scope: 'openid email profile' },
}));

// Policy + assertion: the same per-request work the gateway does.
app.use(async (req, res, next) => {
  const user = req.oidc.user;
  const domain = typeof user?.email === 'string' ? user.email.split('@').pop().toLowerCase() : null;
  if (!user?.email_verified || domain !== allowedDomain) {
    res.status(403).type('text').send('Access denied');
    return;
  }
  try {
    req.assertion = await new SignJWT({
      email: user.email, email_verified: true, name: user.name, groups: user.groups ?? [],
    })
      .setProtectedHeader({ alg: 'EdDSA', kid: 'peer' })
      .setIssuer(baseURL).setAudience(originUrl).setSubject(user.sub)
      .setIssuedAt().setNotBefore('0s').setExpirationTime('60s')
      .sign(signingKey);
    next();
  } catch (e) { next(e); }
});

app.use(createProxyMiddleware({
  target: originUrl,
  xfwd: true,
  on: {
    proxyReq(proxyReq, req) {
      const user = req.oidc.user;
      proxyReq.setHeader('x-auth-request-user', user.sub);
      proxyReq.setHeader('x-auth-request-email', user.email);
      if (Array.isArray(user.groups) && user.groups.length) proxyReq.setHeader('x-auth-request-groups', user.groups.join(','));
      proxyReq.setHeader('x-edgeauth-assertion', req.assertion);
      const kept = (req.headers.cookie ?? '').split(';').map((c) => c.trim())
        .filter((c) => c && !/^(appSession|auth_verification)(\.\d+)?=/.test(c));
      if (kept.length) proxyReq.setHeader('cookie', kept.join('; '));
      else proxyReq.removeHeader('cookie');
    },
  },
}));

app.listen(port, '127.0.0.1', () => console.log(`peer listening on http://127.0.0.1:${port}`));
