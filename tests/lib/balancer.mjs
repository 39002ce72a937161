// A real load balancer in front of several gateway instances: Debian's nginx,
// round robin, one public URL. It runs in the foreground as the test's own
// user (`daemon off`, one master and one worker: strict round robin), listens
// on 127.0.0.1 only, and keeps its config, pid file, logs and temporary files
// in a temporary directory. Each response carries `X-Upstream` (the instance
// or instances nginx sent the request to), and its access log says the same
// per request (`accessLog()`).
//
// Retries (`proxy_next_upstream error timeout`, nginx's default, made
// explicit): a request whose instance refuses the connection or fails before
// sending a response header goes to the next instance, but only for
// idempotent methods (nginx never retries POST, LOCK, PATCH unless told to).
// That is what a gateway must survive: a GET may reach a second instance
// after the first already acted on it (a callback whose single-use marker is
// set is then refused there, which fails closed).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, onExitSync, startProcess } from './procs.mjs';
import { onPath } from './runtime.mjs';

function executable(f) {
  try { fs.accessSync(f, fs.constants.X_OK); return true; } catch { return false; }
}

// Debian puts it in /usr/sbin, which a non-root PATH often lacks.
export const NGINX = onPath('nginx') ?? (executable('/usr/sbin/nginx') ? '/usr/sbin/nginx' : null);

/** Why a test needing nginx cannot run here (null when it can). */
export const nginxMissing = NGINX ? null : 'needs nginx (Debian nginx; .ci/run installs it)';

/** The nginx.conf for `upstreams` (host:port list) behind 127.0.0.1:`port`, with every path in `dir`. */
export function balancerConfig({ dir, port, upstreams }) {
  // nginx's master switches its workers to `user` only when it runs as root;
  // keep them as the test's user so they can use `dir`.
  const user = process.getuid?.() === 0 ? 'user root;\n' : '';
  return `${user}daemon off;
master_process on;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log stderr notice;
events { worker_connections 2048; }
http {
  log_format lb escape=json '{"request":"$request","status":$status,"upstream":"$upstream_addr","upstream_status":"$upstream_status","ms":"$request_time"}';
  access_log ${dir}/access.log lb;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream gateways {
${upstreams.map((u) => `    server ${u} max_fails=1 fail_timeout=5s;`).join('\n')}
    keepalive 32;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://gateways;
      # The gateway checks the Host against its public URL (the balancer's).
      proxy_set_header Host $http_host;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout;
      proxy_next_upstream_tries 3;
      proxy_connect_timeout 2s;
      proxy_read_timeout 30s;
      add_header X-Upstream $upstream_addr always;
    }
  }
}
`;
}

/**
 * nginx on 127.0.0.1:`port` (a free one by default) over `upstreams`
 * ("127.0.0.1:PORT" strings). Stop it with `stop()`.
 */
export async function startBalancer({ port, upstreams }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edgeauth-nginx-'));
  const forgetDir = onExitSync(() => fs.rmSync(dir, { recursive: true, force: true }));
  const removeDir = () => { fs.rmSync(dir, { recursive: true, force: true }); forgetDir(); };
  const p = port ?? await freePort('127.0.0.1');
  const conf = path.join(dir, 'nginx.conf');
  fs.writeFileSync(conf, balancerConfig({ dir, port: p, upstreams }));
  let proc;
  try {
    // -e: the error log before the config is read (the default path is not ours).
    ({ proc } = await startProcess('nginx', NGINX, ['-p', `${dir}/`, '-c', conf, '-e', 'stderr'], {
      ready: /start worker process \d+/, timeoutMs: 20000,
    }));
  } catch (e) {
    removeDir();
    throw e;
  }
  return {
    url: `http://127.0.0.1:${p}`, port: p, proc, dir, upstreams,
    /** Every request nginx logged so far: { request, status, upstream, upstream_status, ms }. */
    accessLog() {
      let text = '';
      try { text = fs.readFileSync(path.join(dir, 'access.log'), 'utf8'); } catch { return []; }
      return text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    },
    async stop() {
      await proc.stop();
      removeDir();
    },
  };
}
