// A real Redis (Debian's redis-server) for tests of several gateway instances
// sharing one key-value store: loopback only, in a temporary directory,
// stoppable and startable again on the same port (a Redis outage). It keeps
// its data across such a restart (append-only file, written on shutdown), as
// a production Redis would: revocations made before an outage still hold after.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, onExitSync, startProcess } from './procs.mjs';
import { onPath } from './runtime.mjs';

export const REDIS_SERVER = onPath('redis-server');

/** Why a test needing Redis cannot run here (null when it can). */
export const redisMissing = REDIS_SERVER ? null : 'needs redis-server on PATH (Debian redis-server; .ci/run installs it)';

/** The runtime config (Spin's format; the host reads it too) putting the default store in this Redis. */
export function redisRuntimeConfig(url) {
  return `[key_value_store.default]\ntype = "redis"\nurl = "${url}"\n`;
}

export async function startRedis({ port } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edgeauth-redis-'));
  const forgetDir = onExitSync(() => fs.rmSync(dir, { recursive: true, force: true }));
  const p = port ?? await freePort('127.0.0.1');
  const launch = async () => (await startProcess('redis', REDIS_SERVER, ['--port', String(p), '--bind', '127.0.0.1',
    '--save', '', '--appendonly', 'yes', '--dir', dir], { ready: /Ready to accept connections/, timeoutMs: 30000 })).proc;
  let proc;
  try {
    proc = await launch();
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true }); forgetDir();
    throw e;
  }
  const url = `redis://127.0.0.1:${p}`;
  const redis = {
    port: p, url, runtimeConfig: redisRuntimeConfig(url),
    get proc() { return proc; },
    get running() { return !proc.exited; },
    /** Stops the server (SIGTERM: it writes its data and exits); the port is free until start(). */
    async stop() { await proc.stop(); },
    /** Starts it again on the same port with the same data. */
    async start() { proc = await launch(); },
    /** Stops it for good and removes its files. */
    async close() {
      await proc.stop();
      fs.rmSync(dir, { recursive: true, force: true });
      forgetDir();
    },
  };
  return redis;
}
