// Example origin app behind edgeauth (tests and demo).
//
//   GET  /...               HTML page showing the identity the gateway sent
//   POST /echo              streams the request body back (same content-type)
//   GET  /set-cookie        sets an origin cookie (pass-through checks)
//   GET  /status/<code>     answers with that status and a few custom headers
//   GET  /redirect          302 to /landed (the gateway must not rewrite it)
//   GET  /profile-form      small form a tenant rule redirects to (progressive profiling):
//                           posts `?field=` and the gateway's `state` to /.edgeauth/continue
//   ANY  /__slow?ms=N       answers after N ms (a slow webhook)
//   GET  /__origin/requests every recorded request as JSON (not recorded itself)
//   POST /__origin/reset    forget the recorded requests
// Every response carries `x-origin: yes`.
//
// Environment: ORIGIN_HOST (default 127.0.0.1), ORIGIN_PORT (default 3001; 0 = free port).

import http from 'node:http';
import crypto from 'node:crypto';

const HOST = process.env.ORIGIN_HOST || '127.0.0.1';
const PORT = Number(process.env.ORIGIN_PORT ?? 3001);
const MAX_RECORDED_BODY = 64 * 1024;
const MAX_RECORDS = 1000;

if (!HOST.startsWith('127.')) {
  console.error(`ORIGIN_HOST must be in 127.0.0.0/8, got ${HOST}`);
  process.exit(2);
}

let records = [];
let counter = 0;

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));

function decodeJwtPayload(jwt) {
  try {
    const [h, p] = String(jwt).split('.');
    return {
      header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')),
      payload: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')),
    };
  } catch {
    return null;
  }
}

function identityPage(req) {
  const user = req.headers['x-auth-request-user'];
  const email = req.headers['x-auth-request-email'];
  const groups = req.headers['x-auth-request-groups'];
  const assertion = req.headers['x-edgeauth-assertion'];
  const decoded = assertion ? decodeJwtPayload(assertion) : null;
  const row = (k, v, id) => `<tr><th>${esc(k)}</th><td id="${id}">${v === undefined ? '<em>(none)</em>' : esc(v)}</td></tr>`;
  return `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Example origin – edgeauth</title>
<style>body{font-family:system-ui,sans-serif;margin:40px;max-width:900px}th{text-align:left;padding-right:16px;vertical-align:top}
pre{background:#f4f5f7;padding:12px;overflow:auto}.hello{font-size:1.4em}</style></head><body>
<h1>Example origin app</h1>
<p class="hello" id="hello">${user ? `Hello, <strong id="who">${esc(decoded?.payload?.name || user)}</strong>!` : 'No identity received.'}</p>
<p>Request: <code id="request">${esc(req.method)} ${esc(req.url)}</code></p>
<h2>Identity headers from the gateway</h2>
<table>
${row('X-Auth-Request-User', user, 'user')}
${row('X-Auth-Request-Email', email, 'email')}
${row('X-Auth-Request-Groups', groups, 'groups')}
</table>
<h2>X-Edgeauth-Assertion (decoded here, verify it against the gateway's /.edgeauth/jwks.json)</h2>
<pre id="assertion">${decoded ? esc(JSON.stringify(decoded, null, 2)) : '(none)'}</pre>
<p><a href="/.edgeauth/logout?rd=/">Sign out</a></p>
</body></html>`;
}

function record(req, body) {
  const rec = {
    n: ++counter,
    time: new Date().toISOString(),
    method: req.method,
    url: req.url,
    httpVersion: req.httpVersion,
    headers: req.headers,
    rawHeaders: req.rawHeaders,
    bodyLength: body.length,
    bodySha256: body.sha256,
    body: body.text,
  };
  records.push(rec);
  if (records.length > MAX_RECORDS) records = records.slice(-MAX_RECORDS);
}

function send(res, status, headers, body) {
  res.writeHead(status, { 'x-origin': 'yes', ...headers });
  res.end(body);
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://origin.invalid');

  if (url.pathname === '/__origin/requests' && req.method === 'GET') {
    return send(res, 200, { 'content-type': 'application/json' }, JSON.stringify(records));
  }
  if (url.pathname === '/__origin/reset' && req.method === 'POST') {
    records = [];
    return send(res, 204, {}, '');
  }

  // Read (or stream) the body, hashing it and keeping a bounded copy for the record.
  const hash = crypto.createHash('sha256');
  const kept = [];
  let keptLen = 0;
  let length = 0;
  const echo = url.pathname === '/echo' && req.method !== 'GET' && req.method !== 'HEAD';
  if (echo) {
    const headers = { 'content-type': req.headers['content-type'] || 'application/octet-stream' };
    res.writeHead(200, { 'x-origin': 'yes', ...headers });
  }
  req.on('data', (c) => {
    hash.update(c);
    length += c.length;
    if (keptLen < MAX_RECORDED_BODY) { kept.push(c); keptLen += c.length; }
    if (echo) res.write(c);
  });
  req.on('error', () => res.destroy());
  req.on('end', () => {
    const text = Buffer.concat(kept).subarray(0, MAX_RECORDED_BODY).toString('utf8');
    record(req, { length, sha256: hash.digest('hex'), text });
    if (echo) return res.end();

    if (url.pathname === '/set-cookie') {
      return send(res, 200, {
        'content-type': 'text/plain',
        'set-cookie': ['app_pref=dark; Path=/; HttpOnly', 'app_lang=en; Path=/'],
      }, 'cookies set\n');
    }
    const st = url.pathname.match(/^\/status\/(\d{3})$/);
    if (st) {
      return send(res, Number(st[1]), {
        'content-type': 'text/plain; charset=utf-8',
        'x-custom-one': 'one',
        'x-custom-two': 'two, three',
        'cache-control': 'private, max-age=7',
        etag: '"origin-etag-1"',
      }, `status ${st[1]} from origin\n`);
    }
    if (url.pathname === '/profile-form') {
      const field = (url.searchParams.get('field') || 'company').replace(/[^a-z_]/g, '');
      const retry = url.searchParams.get('retry') ? '<p id="retry">Please enter a value.</p>' : '';
      return send(res, 200, { 'content-type': 'text/html; charset=utf-8' }, `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>One more thing</title></head><body><h1>One more thing</h1>${retry}
<form id="profile" method="get" action="/.edgeauth/continue">
<input type="hidden" name="state" value="${esc(url.searchParams.get('state') || '')}">
<label>Your ${esc(field)} <input id="field" name="${esc(field)}" autocomplete="organization"></label>
<button id="save" type="submit">Continue</button></form></body></html>`);
    }
    if (url.pathname === '/__slow') {
      const ms = Math.min(Number(url.searchParams.get('ms') || 5000), 60000);
      return setTimeout(() => send(res, 200, { 'content-type': 'application/json' }, '{"slow":true}'), ms);
    }
    if (url.pathname === '/redirect') {
      return send(res, 302, { location: '/landed?from=origin', 'content-type': 'text/plain' }, 'moved\n');
    }
    if (url.pathname.startsWith('/api/') || /application\/json/.test(req.headers.accept || '')) {
      return send(res, 200, { 'content-type': 'application/json' }, JSON.stringify({
        ok: true, method: req.method, url: req.url,
        user: req.headers['x-auth-request-user'] ?? null,
        email: req.headers['x-auth-request-email'] ?? null,
        groups: req.headers['x-auth-request-groups'] ?? null,
      }));
    }
    return send(res, 200, { 'content-type': 'text/html; charset=utf-8' }, req.method === 'HEAD' ? '' : identityPage(req));
  });
});

server.listen(PORT, HOST, () => {
  console.log(`origin listening on http://${HOST}:${server.address().port}`);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
