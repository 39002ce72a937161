// Import and export of 10,000 profiles (issue 10: "export of 10,000
// generated profiles in bounded memory"): `edgeauth profiles import` sends a
// generated JSON-lines file in chunks under the gateway's 1 MiB body cap,
// `edgeauth profiles export` pages it all back. Every id comes back exactly
// once, every page stays within the page bound, and the gateway process's
// memory does not grow with the export (figures printed as a diagnostic;
// bench/results/2026-11-29-profiles-export-10k.md has a run's).
//
// KV lives in /dev/shm when there is one: both stores fsync every write
// (the host's journal, Spin's SQLite), which on a disk would make this test
// measure the disk, not the gateway.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { rawRequest } from '../lib/http.mjs';
import { RUNTIME } from '../lib/runtime.mjs';
import { HOST_BIN, startIdp, startOrigin, startGateway } from '../lib/stack.mjs';

const N = 10000;
/** gateway/core/src/profile_admin.rs */
const MAX_PAGE_BYTES = 48 * 1024;
const MAX_IMPORT_BODY = 1024 * 1024;
const IMPORT_CHUNK_LINES = 200;
/**
 * What the export may add to the gateway's memory (KiB). A page is 48 KiB;
 * the 10,000 profiles are 10.3 MiB, which held at once (plus their parsed
 * form) would add well over that. Under Spin, SQLite's page cache (2 MiB by
 * default) fills while the export reads: +1.9 MiB peak, +3.2 MiB resident seen.
 */
const EXPORT_GROWTH_BOUND_KB = 8 * 1024;
const ADMIN_TOKEN = crypto.randomBytes(18).toString('base64url');

let idp; let origin; let gw; let work;
const ids = [];
let file; let longest = 0;

const b32 = 'abcdefghijklmnopqrstuvwxyz234567';
const newId = () => `p_${[...crypto.randomBytes(26)].map((b) => b32[b & 31]).join('')}`;

/** About 1 KiB per person: two identities, two emails, some metadata. */
function person(i) {
  const id = newId();
  const at = 1_700_000_000 + i;
  return {
    id, created_at: at,
    identities: [
      { connection: 'corp', subject: `emp-${i}`, claims: { name: `Person ${i}`, groups: ['staff', `team-${i % 50}`], locale: 'en-GB' }, linked_at: at },
      { connection: 'github', subject: String(100000 + i), claims: { login: `person${i}` }, linked_at: at + 60 },
    ],
    emails: [
      { address: `person${i}@corp.example`, verified: true, connection: 'corp' },
      { address: `p${i}@users.example`, verified: false, connection: 'github' },
    ],
    name: `Person ${i}`, picture: `https://avatars.example/${i}.png`,
    user_metadata: { lang: ['en', 'fr', 'de'][i % 3], newsletter: i % 2 === 0, bio: 'x'.repeat(200) },
    app_metadata: { plan: ['free', 'pro', 'team'][i % 3], crm_id: `crm-${i}`, roles: ['reader'] },
    logins: 1 + (i % 17),
    first_login: { at, connection: 'corp' }, last_login: { at: at + 3600, connection: 'github' },
    last_ip: `198.51.100.${i % 250}`, last_user_agent: 'Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0',
  };
}

/** Runs the CLI with stdout to `out` (a file: the export is megabytes); resolves with stdout text when small. */
function cli(args, { out } = {}) {
  return new Promise((resolve, reject) => {
    const fd = out ? fs.openSync(out, 'w') : 'pipe';
    const child = spawn(HOST_BIN, ['profiles', ...args], {
      env: { ...process.env, EDGEAUTH_GATEWAY: gw.url, EDGEAUTH_ADMIN_TOKEN: ADMIN_TOKEN },
      stdio: ['ignore', fd, 'pipe'],
    });
    let stdout = ''; let stderr = '';
    child.stdout?.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code) => {
      if (out) fs.closeSync(fd);
      if (code === 0) resolve(stdout); else reject(Object.assign(new Error(`edgeauth profiles ${args[0]}: exit ${code}\n${stderr}`), { stdout, stderr }));
    });
  });
}

/** The gateway's processes: the one started and its descendants (`spin up` may run the app in a child). */
function processTree(pid) {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    let kids = [];
    try {
      kids = fs.readdirSync(`/proc/${out[i]}/task`).flatMap((t) => fs.readFileSync(`/proc/${out[i]}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
    } catch { /* gone */ }
    out.push(...kids);
  }
  return out;
}

/** VmHWM and VmRSS (KiB) summed over the gateway's processes. */
function memory() {
  let hwm = 0; let rss = 0;
  for (const pid of processTree(gw.proc.pid)) {
    let status = '';
    try { status = fs.readFileSync(`/proc/${pid}/status`, 'utf8'); } catch { continue; }
    hwm += Number(status.match(/VmHWM:\s+(\d+)/)?.[1] ?? 0);
    rss += Number(status.match(/VmRSS:\s+(\d+)/)?.[1] ?? 0);
  }
  return { hwm, rss };
}

before(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'edgeauth-10k-'));
  const shm = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  const stateDir = fs.mkdtempSync(path.join(shm, 'edgeauth-10k-state-'));
  file = path.join(work, 'people.jsonl');
  const lines = [];
  for (let i = 0; i < N; i++) {
    const p = person(i);
    ids.push(p.id);
    const line = JSON.stringify(p);
    longest = Math.max(longest, line.length);
    lines.push(line);
  }
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
  [idp, origin] = await Promise.all([startIdp({ gatewayUrls: [] }), startOrigin()]);
  gw = await startGateway({ originUrl: origin.url, issuer: idp.issuer, stateDir, vars: { admin_token: ADMIN_TOKEN } });
});
after(async () => {
  await Promise.all([gw?.stop(), idp?.stop(), origin?.stop()]);
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

const figures = {};

test(`import ${N} profiles with the CLI, in chunks under the body cap`, async (t) => {
  const size = fs.statSync(file).size;
  assert.ok(size > 5 * MAX_IMPORT_BODY, `${size} bytes: several chunks`);
  const m0 = memory();
  const t0 = process.hrtime.bigint();
  const out = await cli(['import', 'default', file]);
  figures.importMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const m1 = memory();
  assert.match(out, new RegExp(`imported ${N}, skipped 0`));
  t.diagnostic(`import: ${N} profiles, ${(size / 1048576).toFixed(1)} MiB, ${Math.ceil(N / IMPORT_CHUNK_LINES)} requests, `
    + `${figures.importMs.toFixed(0)} ms; ${RUNTIME} gateway VmHWM ${m0.hwm} -> ${m1.hwm} KiB, VmRSS ${m0.rss} -> ${m1.rss} KiB`);
});

test('a repeated or conflicting import is refused line by line, and the body cap is stated', async () => {
  const again = fs.readFileSync(file, 'utf8').split('\n').slice(0, 3);
  const thief = JSON.parse(again[2]);
  thief.id = newId();
  thief.identities = [thief.identities[0]];
  thief.emails = [];
  const bad = { ...JSON.parse(again[1]), id: newId(), emails: [{ address: 'Caps@Example.COM', verified: true, connection: 'corp' }] };
  const body = [again[0], 'not json', JSON.stringify(thief), '', JSON.stringify(bad)].join('\n');
  let r = await rawRequest(gw.url, {
    method: 'POST', target: '/.edgeauth/admin/profiles/default/import', body,
    headers: [['Authorization', `Bearer ${ADMIN_TOKEN}`], ['Content-Type', 'application/x-ndjson']],
  });
  assert.equal(r.status, 200, r.body);
  const report = JSON.parse(r.body);
  assert.deepEqual([report.imported, report.skipped], [0, 4]);
  const why = Object.fromEntries(report.results.map((x) => [x.line, x.reason]));
  assert.match(why[1], /exists/);
  assert.match(why[2], /not a profile/);
  assert.match(why[3], new RegExp(`identity \`corp\`/\`emp-2\` belongs to profile \`${ids[2]}\``));
  assert.match(why[5], /emails\[0\]\.address/);
  r = await rawRequest(gw.url, {
    method: 'POST', target: '/.edgeauth/admin/profiles/default/import', body: 'x'.repeat(MAX_IMPORT_BODY + 1),
    headers: [['Authorization', `Bearer ${ADMIN_TOKEN}`]],
  });
  assert.equal(r.status, 413);
  assert.match(JSON.parse(r.body).message, /1048576 bytes/);
});

test(`export all ${N} with the CLI: each id exactly once, the gateway's memory bounded`, async (t) => {
  const out = path.join(work, 'export.jsonl');
  const m0 = memory();
  const t0 = process.hrtime.bigint();
  await cli(['export', 'default', '--limit', '500'], { out });
  figures.exportMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const m1 = memory();
  const lines = fs.readFileSync(out, 'utf8').split('\n').filter(Boolean);
  const got = lines.map((l) => JSON.parse(l).id);
  assert.equal(got.length, N, 'no profile twice, none missing');
  assert.equal(new Set(got).size, N);
  assert.deepEqual(got, ids, 'in import order');
  const exported = fs.statSync(out).size;
  t.diagnostic(`export: ${N} profiles, ${(exported / 1048576).toFixed(1)} MiB, ${figures.exportMs.toFixed(0)} ms; `
    + `${RUNTIME} gateway (${processTree(gw.proc.pid).length} processes) VmHWM ${m0.hwm} -> ${m1.hwm} KiB, VmRSS ${m0.rss} -> ${m1.rss} KiB`);
  assert.ok(m1.hwm - m0.hwm < EXPORT_GROWTH_BOUND_KB,
    `the export raised the gateway's peak memory by ${m1.hwm - m0.hwm} KiB (bound ${EXPORT_GROWTH_BOUND_KB}; the export is ${Math.round(exported / 1024)} KiB)`);
  assert.ok(m1.rss - m0.rss < EXPORT_GROWTH_BOUND_KB, `resident memory grew by ${m1.rss - m0.rss} KiB`);
});

test('every export page stays within the page bound', async (t) => {
  let cursor = null; let pages = 0; let biggest = 0; let count = 0;
  const t0 = process.hrtime.bigint();
  for (;;) {
    const r = await rawRequest(gw.url, {
      method: 'GET', target: `/.edgeauth/admin/profiles/default?limit=500${cursor ? `&cursor=${cursor}` : ''}`,
      headers: [['Authorization', `Bearer ${ADMIN_TOKEN}`]],
    });
    assert.equal(r.status, 200);
    const bytes = Buffer.byteLength(r.body);
    // A page stops after the profile that takes it past the bound.
    assert.ok(bytes <= MAX_PAGE_BYTES + longest + 1, `page ${pages + 1}: ${bytes} bytes`);
    biggest = Math.max(biggest, bytes);
    count += r.body.split('\n').filter(Boolean).length;
    pages++;
    cursor = r.header('edgeauth-next-cursor');
    if (!cursor) break;
  }
  assert.equal(count, N);
  assert.ok(pages >= Math.ceil(N * 900 / MAX_PAGE_BYTES), `${pages} pages`);
  t.diagnostic(`pages: ${pages} of at most ${biggest} bytes (bound ${MAX_PAGE_BYTES} + one profile of ≤ ${longest}), ${(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(0)} ms`);
});
