// An origin that misbehaves on purpose, recording every request like
// tests/origin/origin.mjs does:
//   /hang...            accept, never answer
//   /slow/<ms>...       answer 200 after <ms>
//   /stall...           200 + headers + a little body, then nothing
//   /reset...           drop the connection without answering
//   /garbage...         write bytes that are not HTTP, then close
//   /set-gw-cookies...  try to set the gateway's cookies (many spellings)
//   /leak-headers...    answer with headers that look like identity/tokens
//   anything else       200 text
//   GET /__origin/requests   the recorded requests (not recorded itself)

import http from 'node:http';
import { freePort } from '../../lib/procs.mjs';

export async function startHostileOrigin({ host = '127.0.0.1' } = {}) {
  const port = await freePort(host);
  const records = [];
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://o.invalid');
    if (u.pathname === '/__origin/requests') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify(records));
    }
    records.push({ method: req.method, url: req.url, headers: req.headers, rawHeaders: req.rawHeaders, at: Date.now() });
    const p = u.pathname;
    req.resume();
    if (p.startsWith('/hang')) return;
    if (p.startsWith('/reset')) return req.socket.destroy();
    if (p.startsWith('/garbage')) { req.socket.end('SSH-2.0-OpenSSH\r\n\x00\x01\x02 not http at all\r\n\r\n'); return; }
    if (p.startsWith('/stall')) {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '100000' });
      res.write('partial body…');
      return;
    }
    const m = p.match(/^\/slow\/(\d+)/);
    const answer = () => {
      if (res.destroyed) return;
      const headers = { 'content-type': 'text/plain; charset=utf-8', 'x-origin': 'hostile' };
      if (p.startsWith('/set-gw-cookies')) {
        headers['set-cookie'] = [
          'edgeauth_session=planted-by-origin; Path=/', 'EDGEAUTH_SESSION=planted; Path=/', '__Host-edgeauth_session=planted; Path=/; Secure',
          'edgeauth_login=planted; Path=/.edgeauth/', ' edgeauth_session =planted', 'edgeauth_session_0=planted', 'Edgeauth_Session=x',
          '__Host-EDGEAUTH_LOGIN=planted; Path=/; Secure', 'edgeauth_assertion=planted; Path=/', 'app=kept; Path=/',
        ];
      }
      if (p.startsWith('/leak-headers')) {
        headers['x-auth-request-user'] = 'origin-said-admin';
        headers['x-edgeauth-assertion'] = 'origin-assertion';
      }
      res.writeHead(200, headers);
      res.end(`origin answered ${req.method} ${req.url} for ${req.headers['x-auth-request-user'] ?? 'nobody'}\n`);
    };
    if (m) setTimeout(answer, Number(m[1]));
    else answer();
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise((resolve, reject) => { server.once('error', reject); server.listen(port, host, resolve); });
  return {
    url: `http://${host}:${port}`,
    records,
    async requests() { return records; },
    async reset() { records.length = 0; },
    stop: () => new Promise((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); }),
  };
}

/**
 * The same origin in its own process (so a busy test process cannot delay its
 * answers): `node hostile-origin.mjs` prints its URL.
 */
export async function startHostileOriginProcess() {
  const { startProcess } = await import('../../lib/procs.mjs');
  const { proc, match } = await startProcess('hostile-origin', process.execPath, [new URL(import.meta.url).pathname], {
    ready: /hostile origin listening on (http:\/\/\S+)/, timeoutMs: 30000,
  });
  const url = match[1];
  return {
    url, proc,
    async requests() { return (await fetch(`${url}/__origin/requests`)).json(); },
    stop: () => proc.stop(),
  };
}

if (process.argv[1] === new URL(import.meta.url).pathname) {
  const o = await startHostileOrigin();
  console.log(`hostile origin listening on ${o.url}`);
}
