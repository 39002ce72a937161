// Child process management for the tests: each service runs in its own process
// group (and dies with its parent through PR_SET_PDEATHSIG via setpriv when
// available); readiness is a line on stdout/stderr, never a fixed sleep; every
// group is killed when the test process ends, however it ends.
//
// How a test file can end (node 20's runner, `--test-timeout`): normally, with
// its after() hooks; on the file timeout the runner sends the file's process
// SIGTERM and does NOT run its after() hooks, then waits for the process to exit
// AND for every holder of its stdout/stderr pipes to close them. So: no child may
// inherit the test process's stdio (a surviving grandchild would keep the whole
// run waiting), SIGTERM/SIGINT/SIGHUP kill every group synchronously, and
// SIGKILL of the test process still takes its children down (PDEATHSIG).
// Every child also carries EDGEAUTH_TEST_RUN in its environment, which
// scripts/test uses to prove that nothing survived the run.

import { spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const WORK = path.join(ROOT, 'tests', '.work');
export const LOGS = path.join(WORK, 'logs');
fs.mkdirSync(LOGS, { recursive: true });

/** Marks every process the tests start (scripts/test sets one per run). */
export const RUN_MARKER = 'EDGEAUTH_TEST_RUN';
process.env[RUN_MARKER] ||= `adhoc-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;

const live = new Set();
const syncCleanups = new Set();

function killGroup(pid, signal) {
  try { process.kill(-pid, signal); } catch { /* gone */ }
}

/**
 * Run `fn` (synchronous) when the test process ends, however it ends short of
 * SIGKILL; the returned function cancels it (call it once cleaned up normally).
 */
export function onExitSync(fn) {
  syncCleanups.add(fn);
  return () => syncCleanups.delete(fn);
}

function killAllSync() {
  for (const p of live) killGroup(p.pid, 'SIGKILL');
  live.clear();
  for (const fn of syncCleanups) { try { fn(); } catch { /* best effort */ } }
  syncCleanups.clear();
}
process.on('exit', killAllSync);
for (const [sig, n] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]]) {
  process.once(sig, () => {
    process.stderr.write(`# ${sig}: stopping ${live.size} started process group(s)\n`);
    killAllSync();
    process.exit(128 + n);
  });
}

/** How many started processes are still running (for tests of the harness). */
export function liveCount() { return live.size; }

let setprivOk;
function hasSetpriv() {
  if (setprivOk === undefined) {
    try { execFileSync('setpriv', ['--pdeathsig', 'KILL', '--', 'true'], { stdio: 'ignore' }); setprivOk = true; } catch { setprivOk = false; }
  }
  return setprivOk;
}

const handedOut = new Set();

/**
 * A port that was free on `host` a moment ago and that this process has not
 * handed out before: callers often pick ports well before binding them, and
 * the kernel would happily offer a picked-but-unbound port again.
 */
export async function freePort(host = '127.0.0.1') {
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const s = net.createServer();
      s.unref();
      s.on('error', reject);
      s.listen(0, host, () => {
        const { port: p } = s.address();
        s.close(() => resolve(p));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

let seq = 0;

/**
 * Calls `onLine` with each complete line of `stream` (without its newline),
 * then with the unterminated rest when the stream ends: chunks split lines
 * anywhere, so line-wise work (readiness, prefixed echo) must not see chunks.
 */
export function eachLine(stream, onLine) {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (s) => {
    buf += s;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      onLine(line);
    }
  });
  stream.on('end', () => { if (buf) onLine(buf); buf = ''; });
}

/**
 * Start `cmd args` in a new process group; resolve when a line of its output
 * matches `ready` (the match is returned), reject when it exits first or after
 * `timeoutMs`. `echo`: copy its output to ours, each line prefixed `[name] `.
 */
export function startProcess(name, cmd, args, { env = {}, ready, timeoutMs = 60000, cwd = ROOT, echo = false } = {}) {
  const logFile = path.join(LOGS, `${name}-${process.pid}-${++seq}.log`);
  const log = fs.createWriteStream(logFile);
  const [file, argv] = hasSetpriv() ? ['setpriv', ['--pdeathsig', 'KILL', '--', cmd, ...args]] : [cmd, args];
  // stdin ignored, stdout/stderr piped to us: never inherited (see the top).
  const child = spawn(file, argv, {
    cwd, env: { ...process.env, ...env }, detached: true, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const proc = {
    name, pid: child.pid, child, logFile, output: '', exited: null,
    async stop() {
      if (proc.exited) return;
      live.delete(proc);
      killGroup(child.pid, 'SIGTERM');
      const t = setTimeout(() => killGroup(child.pid, 'SIGKILL'), 3000);
      await proc.exitPromise;
      clearTimeout(t);
      killGroup(child.pid, 'SIGKILL'); // stragglers in the group
    },
    tail(n = 4000) { return proc.output.slice(-n); },
  };
  if (child.pid !== undefined) live.add(proc);
  proc.exitPromise = new Promise((resolve) => child.on('close', (code, signal) => {
    // 'close', not 'exit': the output is complete once both pipes are closed.
    proc.exited = { code, signal };
    live.delete(proc);
    resolve(proc.exited);
  }));
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (err, m) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) { proc.stop(); reject(err); } else resolve({ proc, match: m });
    };
    const onLine = (line) => {
      log.write(`${line}\n`);
      if (echo) process.stdout.write(`[${name}] ${line}\n`);
      proc.output = `${proc.output}${line}\n`.slice(-200000);
      if (done) return;
      const m = line.match(ready);
      if (m) finish(null, m);
    };
    eachLine(child.stdout, onLine);
    eachLine(child.stderr, onLine);
    child.on('error', (e) => finish(new Error(`${name}: cannot start ${cmd}: ${e.message}`)));
    proc.exitPromise.then((x) => finish(new Error(
      `${name} exited (${x.code ?? x.signal}) before it was ready; log ${logFile}:\n${proc.tail()}`)));
    const timer = setTimeout(() => finish(new Error(
      `${name} not ready after ${timeoutMs} ms; log ${logFile}:\n${proc.tail()}`)), timeoutMs);
  });
}

/** Poll `fn` until it returns a truthy value (bounded). */
export async function waitFor(fn, { timeoutMs = 10000, intervalMs = 50, what = 'condition' } = {}) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) { last = e; }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
}
