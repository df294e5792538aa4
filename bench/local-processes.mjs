// What bench/workers.mjs and bench/paired.mjs share: child processes that are
// all killed (with their process groups) on exit, error or Ctrl-C; waiting
// for a server on 127.0.0.1 to answer; nginx as three 100-byte backends.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';

const children = new Set();

/** Starts `cmd` in a process group of its own; `child.err()` is what it wrote to stderr so far. */
export function start(cmd, args, env = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true, env: { ...process.env, ...env } });
  let err = '';
  child.stderr.on('data', (c) => (err += c));
  child.err = () => err;
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function killAll() {
  for (const child of children) {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {}
  }
}
process.on('exit', killAll);
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

function get(port) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false, timeout: 1000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200));
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
  });
}

/** Resolves once 127.0.0.1:`port` answers GET / with 200; throws if `child` exits first or 15 s pass. */
export async function waitReady(port, what, child) {
  const until = Date.now() + 15_000;
  while (Date.now() < until) {
    if (await get(port)) return;
    if (child.exitCode !== null) throw new Error(`${what} exited: ${child.err()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not answer on ${port} within 15 s: ${child.err()}`);
}

const BODY = 'switchyard-bench-'.padEnd(99, 'x');

/** nginx (1 worker) answering 100 bytes on each of `ports`, its files in `dir`; `argvPrefix` e.g. ['taskset', '-c', '1']. */
export async function startNginxBackends(dir, ports, argvPrefix = []) {
  writeFileSync(
    join(dir, 'nginx.conf'),
    `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
${process.getuid?.() === 0 ? 'user root;' : ''}
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 75s;
  ${ports.map((p) => `server { listen 127.0.0.1:${p}; location / { default_type text/plain; return 200 "${BODY}\\n"; } }`).join('\n  ')}
}
`,
  );
  const argv = [...argvPrefix, 'nginx', '-p', dir, '-e', join(dir, 'nginx-error.log'), '-c', join(dir, 'nginx.conf')];
  const nginx = start(argv[0], argv.slice(1));
  for (const p of ports) await waitReady(p, 'nginx', nginx);
  return nginx;
}
