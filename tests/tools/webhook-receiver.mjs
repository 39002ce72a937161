// A webhook receiver as a tenant would run one: plain node http on loopback,
// verifying each delivery with the `standardwebhooks` package (the reference
// implementation of the Standard Webhooks spec, independent of the gateway)
// before accepting it. Tests steer how it answers and read what it got:
//
//   POST /__mode {"mode": "ok" | "slow" | "fail", "delayMs": n}
//        ok: 204 after verifying; slow: answer 204 only after delayMs;
//        fail: 500 (after recording the attempt)
//   GET  /__deliveries  every attempt: {id, timestamp, signature, body, verified, mode}
//
// Env: RECEIVER_PORT, RECEIVER_SECRET (whsec_...). Prints
// "receiver listening on http://..." when ready.

import http from 'node:http';
import { Webhook } from 'standardwebhooks';

const secret = process.env.RECEIVER_SECRET;
const wh = new Webhook(secret);
let mode = 'ok';
let delayMs = 0;
const deliveries = [];

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    if (req.url === '/__mode' && req.method === 'POST') {
      ({ mode, delayMs = 0 } = JSON.parse(body));
      res.writeHead(204).end();
      return;
    }
    if (req.url === '/__deliveries') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(deliveries));
      return;
    }
    const headers = {
      'webhook-id': req.headers['webhook-id'],
      'webhook-timestamp': req.headers['webhook-timestamp'],
      'webhook-signature': req.headers['webhook-signature'],
    };
    let verified = false;
    try {
      wh.verify(body, headers);
      verified = true;
    } catch { /* recorded as unverified, answered 400 */ }
    deliveries.push({
      id: headers['webhook-id'], timestamp: headers['webhook-timestamp'], signature: headers['webhook-signature'],
      contentType: req.headers['content-type'], path: req.url, body, verified, mode,
    });
    if (!verified) { res.writeHead(400).end('bad signature'); return; }
    if (mode === 'fail') { res.writeHead(500).end('not today'); return; }
    if (mode === 'slow') { setTimeout(() => res.writeHead(204).end(), delayMs); return; }
    res.writeHead(204).end();
  });
});

server.listen(Number(process.env.RECEIVER_PORT), '127.0.0.1', () => {
  const { port } = server.address();
  console.log(`receiver listening on http://127.0.0.1:${port}`);
});
