#!/usr/bin/env node
// Switchyard's benchmark: Switchyard beside the proxies people actually run,
// measured in interleaved rounds on one machine so that noise lands on every
// target alike. Ratios between targets are the result; absolute req/s move
// with the machine.
//
//   npm run build && npm run bench                     # quick: GET 100 B at 64 and 8 connections
//   node bench/run.mjs --scenarios all                 # every scenario
//   node bench/run.mjs --plugin-cost                   # Switchyard with each plugin alone vs none
//   node bench/run.mjs --profile                       # CPU profile of Switchyard under load, summarized
//   node bench/run.mjs --help
//
// Layout: the proxy under test runs alone on one core (taskset -c 0); wrk, the
// three nginx backends and the idle-client holder share the other (-c 1).
// Everything binds 127.0.0.1. Every process started here is stopped on exit,
// on error and on Ctrl-C; every load is bounded by --duration.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, closeSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { summarizeProfile, formatSummary } from './profile-summary.mjs';
import { availablePlugins, binFlags, MAIN_PIPELINE, NOOP_PLUGIN, ROOT, switchyardToml } from './switchyard-config.mjs';
import { freePort } from './free-port.mjs';

const BENCH = join(ROOT, 'bench');
const CLI = join(ROOT, 'dist/src/cli.js');

const SCENARIOS = {
  get64: { label: 'GET 100 B, 64 connections', connections: 64, path: '/' },
  get8: { label: 'GET 100 B, 8 connections', connections: 8, path: '/' },
  post16k: { label: 'POST 16 KB, 64 connections', connections: 64, path: '/', script: join(BENCH, 'post-16k.lua') },
  get1m: { label: 'GET 1 MB, 16 connections', connections: 16, path: '/1m' },
  idle1k: { label: 'GET 100 B, 64 connections + 1,000 idle keep-alive clients', connections: 64, path: '/', idle: 1000 },
};
const QUICK = ['get64', 'get8'];

const HELP = `usage: node bench/run.mjs [options]
  --scenarios LIST   comma list of ${Object.keys(SCENARIOS).join(', ')}, or "all" (default: ${QUICK.join(',')})
  --targets LIST     comma list of targets (default: direct,nginx,haproxy,undici-minimal,switchyard,reply-from,http-proxy;
                     also: experimental-raw-client, experimental-raw-server, experimental-raw-both)
  --plugin-cost      targets = Switchyard with no plugin, each plugin alone, headers+retry; scenario get64
  --profile          CPU-profile the targets (default: switchyard) under the first scenario (default get64); prints the top self-time functions
  --rounds N         interleaved rounds per scenario (default 5; more short rounds beat fewer long ones
                     on a host whose speed drifts: a median of per-round ratios then survives 2 bad rounds)
  --duration S       measured seconds per round (default 6)
  --warmup S         unmeasured seconds before each measured round (default 2)
  --quiet P          before each round, wait until other processes use at most P% of either core (default 10)
  --quiet-wait S     ... but no longer than S seconds (default 60)
  --max-noise P      repeat a round (up to twice) when other processes took more than P% of a core (default 15)
  --proxy-cpu N      core for the proxy under test (default 0)
  --load-cpu N       core for wrk, backends and idle clients (default 1)
  --alt PATH         also run another build's dist/src/cli.js (an experiment) as target switchyard-alt
                     (with --plugin-cost: alt-none, alt-noop, alt-<main pipeline>)
  --soak N           RSS over N requests (e.g. 1000000) of the first scenario (default get64), in 5 s wrk runs,
                     for each target (default: switchyard, undici-minimal); one process per target
  --same-process     keep each Node target's process for the whole run (default: a fresh process per round,
                     because one process's speed varies by several % from the next: JIT and heap layout)
  --keep             keep the temp dir (configs, logs, profiles)`;

const { values: opts } = parseArgs({
  options: {
    scenarios: { type: 'string' },
    targets: { type: 'string' },
    'plugin-cost': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    rounds: { type: 'string', default: '5' },
    duration: { type: 'string', default: '6' },
    warmup: { type: 'string', default: '2' },
    'max-noise': { type: 'string', default: '15' },
    quiet: { type: 'string', default: '10' },
    'quiet-wait': { type: 'string', default: '60' },
    'proxy-cpu': { type: 'string', default: '0' },
    'load-cpu': { type: 'string', default: '1' },
    keep: { type: 'boolean', default: false },
    'same-process': { type: 'boolean', default: false },
    soak: { type: 'string' },
    alt: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (opts.help) {
  console.log(HELP);
  process.exit(0);
}

const ROUNDS = Number(opts.rounds);
const DURATION = Number(opts.duration);
const WARMUP = Number(opts.warmup);
const MAX_NOISE = Number(opts['max-noise']);
/** Another build's cli.js (an experiment), run beside the checked-out one: --alt /tmp/exp/dist/src/cli.js */
const ALT = opts.alt;
const QUIET = Number(opts.quiet);
const QUIET_WAIT = Number(opts['quiet-wait']);
const PROXY_CPU = opts['proxy-cpu'];
const LOAD_CPU = opts['load-cpu'];

// ---------------------------------------------------------------- processes

/** Every child still running; killed on exit whatever the reason. */
const children = new Set();

function start(cmd, args, { cpu, log, ipc = false, env } = {}) {
  const fd = log ? openSync(log, 'a') : 'ignore';
  const argv = cpu === undefined ? [cmd, ...args] : ['taskset', '-c', cpu, cmd, ...args];
  const child = spawn(argv[0], argv.slice(1), {
    stdio: ['ignore', fd, fd, ...(ipc ? ['ipc'] : [])],
    env: env ?? process.env,
  });
  if (typeof fd === 'number') closeSync(fd);
  child.extraPids = [];
  children.add(child);
  child.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  child.once('exit', () => children.delete(child));
  return child;
}

async function stop(child, signal = 'SIGTERM') {
  if (child.exitCode !== null || child.signalCode !== null) return;
  try {
    child.kill(signal);
  } catch {}
  const timer = setTimeout(() => {
    try {
      child.kill('SIGKILL');
    } catch {}
  }, 5000);
  await child.exited;
  clearTimeout(timer);
  for (const pid of child.extraPids) killPid(pid, 'SIGKILL');
}

function killPid(pid, signal) {
  try {
    process.kill(pid, signal);
  } catch {}
}

function killAllNow() {
  for (const child of children) {
    killPid(child.pid, 'SIGKILL');
    for (const pid of child.extraPids) killPid(pid, 'SIGKILL');
  }
}

/** The run's temp dir (configs, logs), removed on every exit unless --keep. */
let tempDir;

function removeTempDir() {
  if (tempDir === undefined || opts.keep) return;
  rmSync(tempDir, { recursive: true, force: true });
  tempDir = undefined;
}

process.on('exit', () => {
  killAllNow();
  removeTempDir();
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    console.error(`\n${sig}: stopping every process the bench started`);
    killAllNow();
    process.exit(130);
  });
}

/** Runs a command to completion; resolves its stdout. The promise carries `.child`. */
function run(cmd, args, cpu) {
  const argv = cpu === undefined ? [cmd, ...args] : ['taskset', '-c', cpu, cmd, ...args];
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  child.extraPids = [];
  child.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  children.add(child);
  const promise = new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('exit', (code) => {
      children.delete(child);
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} exited ${code}: ${err || out}`));
    });
  });
  promise.child = child;
  return promise;
}

// ---------------------------------------------------------------- helpers

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function get(port, path = '/') {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: 1000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', () => resolve(0));
    req.on('timeout', () => req.destroy());
  });
}

async function waitReady(name, port, child, log) {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child && (child.exitCode !== null || child.signalCode !== null)) break;
    if ((await get(port)) === 200) return;
    await sleep(100);
  }
  const tail = log && existsSync(log) ? readFileSync(log, 'utf8').slice(-2000) : '';
  throw new Error(`${name} did not answer 200 on 127.0.0.1:${port} within 20 s\n${tail}`);
}

function rssKb(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** utime+stime of a process and its threads, in clock ticks. */
function cpuTicks(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}

/** Busy and total ticks per core from /proc/stat. */
function coreTicks() {
  const out = {};
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+) (.*)$/.exec(line);
    if (!m) continue;
    const v = m[2].trim().split(/\s+/).map(Number);
    const idle = v[3] + v[4];
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    out[m[1]] = { busy: total - idle, total };
  }
  return out;
}

function childPids(pid) {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    const out = [];
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      try {
        const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
        if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(name));
      } catch {}
    }
    return out;
  }
}

async function waitForChildPid(pid) {
  for (let i = 0; i < 100; i++) {
    const kids = childPids(pid);
    if (kids.length > 0) return kids;
    await sleep(50);
  }
  throw new Error(`process ${pid} started no worker`);
}

// ---------------------------------------------------------------- backends

const BODY_100 = 'switchyard-bench-'.padEnd(99, 'x') + '\n';

function nginxCommon(dir, tag) {
  return `
worker_processes 1;
worker_rlimit_nofile 16384;
daemon off;
pid ${dir}/${tag}.pid;
error_log ${dir}/${tag}-error.log warn;
${process.getuid?.() === 0 ? 'user root;' : ''}
events { worker_connections 8192; }
`;
}

function nginxHttpCommon(dir, tag) {
  return `
  access_log off;
  client_body_temp_path ${dir}/${tag}-body;
  proxy_temp_path ${dir}/${tag}-proxy;
  fastcgi_temp_path ${dir}/${tag}-fastcgi;
  uwsgi_temp_path ${dir}/${tag}-uwsgi;
  scgi_temp_path ${dir}/${tag}-scgi;
  keepalive_requests 10000000;
  keepalive_timeout 75s;
  client_max_body_size 64m;
  client_body_buffer_size 64k;
  sendfile on;
  tcp_nodelay on;`;
}

/**
 * Three backends served by one nginx worker on the load core: a 100 B answer
 * on every path (any method; a POST body is read and discarded) and a 1 MB
 * file on /1m. nginx rather than node:http because it answers ~3× faster on
 * one core, so the backends are never what limits a proxy (the "direct" row
 * shows their ceiling in the same run).
 */
async function startBackends(dir) {
  const ports = [await freePort(), await freePort(), await freePort()];
  writeFileSync(join(dir, '1m.bin'), Buffer.alloc(1024 * 1024, 'y'));
  const servers = ports
    .map(
      (p) => `
  server {
    listen 127.0.0.1:${p};
    location = /1m { alias ${dir}/1m.bin; default_type application/octet-stream; }
    location / { default_type text/plain; return 200 "${BODY_100.replace('\n', '\\n')}"; }
  }`,
    )
    .join('');
  const conf = join(dir, 'backends.conf');
  writeFileSync(conf, `${nginxCommon(dir, 'backends')}\nhttp {${nginxHttpCommon(dir, 'backends')}\n${servers}\n}\n`);
  const log = join(dir, 'backends.log');
  const child = start('nginx', ['-p', dir, '-e', join(dir, 'backends-error.log'), '-c', conf], { cpu: LOAD_CPU, log });
  for (const p of ports) await waitReady('nginx backends', p, child, log);
  child.extraPids = await waitForChildPid(child.pid);
  return { ports, urls: ports.map((p) => `http://127.0.0.1:${p}`), child, pids: child.extraPids };
}

// ---------------------------------------------------------------- targets

/**
 * How a build is started as users start it: through its bin/lb (the `lb`
 * command npm installs; a sh script that execs node on dist/src/cli.js with
 * LB_NODE_FLAGS), or `node cli.js` for a build that has none.
 */
function switchyardCommand(cli) {
  const bin = join(cli, '../../../bin/lb');
  return existsSync(bin) ? [bin, []] : [process.execPath, [cli]];
}

function switchyardTarget(name, pipeline, note, cli = CLI) {
  return {
    name,
    note:
      (note ?? (pipeline.length ? `round-robin + ${pipeline.join(' + ')}` : 'round-robin, no plugins')) +
      (cli === CLI ? '' : ` (${cli})`) +
      (switchyardCommand(cli)[0] === process.execPath ? ', node cli.js' : `, bin/lb: node ${binFlags(switchyardCommand(cli)[0]).join(' ')}`),
    node: true,
    async start(ctx, port, { nodeFlags = [] } = {}) {
      writeFileSync(join(ctx.dir, 'noop-plugin.mjs'), NOOP_PLUGIN);
      const file = join(ctx.dir, `${name}.toml`);
      writeFileSync(file, switchyardToml(port, ctx.backends.urls, pipeline));
      const log = join(ctx.dir, `${name}.log`);
      const [command, prefix] = switchyardCommand(cli);
      // Extra node flags (--cpu-prof) reach node through LB_NODE_FLAGS, after the bin's own.
      const env = command === process.execPath ? undefined : { ...process.env, LB_NODE_FLAGS: [...binFlags(command), ...nodeFlags].join(' ') };
      const args = command === process.execPath ? [...nodeFlags, ...prefix] : prefix;
      const child = start(command, [...args, 'run', '--no-watch', '-c', file], { cpu: PROXY_CPU, log, env });
      await waitReady(name, port, child, log);
      return { child, pid: child.pid };
    },
  };
}

function nodePeer(name, script, note) {
  return {
    name,
    note,
    node: true,
    async start(ctx, port, { nodeFlags = [] } = {}) {
      const log = join(ctx.dir, `${name}.log`);
      const child = start(process.execPath, [...nodeFlags, join(BENCH, 'peers', script), String(port), ...ctx.backends.urls], {
        cpu: PROXY_CPU,
        log,
      });
      await waitReady(name, port, child, log);
      return { child, pid: child.pid };
    },
  };
}

const TARGETS = {
  direct: {
    name: 'direct',
    note: 'wrk straight to one backend: the ceiling',
    async start(ctx) {
      return { port: ctx.backends.ports[0], pid: undefined, child: undefined };
    },
  },
  nginx: {
    name: 'nginx',
    note: `nginx ${toolVersion('nginx')}, 1 worker, upstream keepalive`,
    async start(ctx, port) {
      const dir = ctx.dir;
      const conf = join(dir, 'nginx-proxy.conf');
      writeFileSync(
        conf,
        `${nginxCommon(dir, 'proxy')}
http {${nginxHttpCommon(dir, 'proxy')}
  upstream backends {
${ctx.backends.ports.map((p) => `    server 127.0.0.1:${p};`).join('\n')}
    keepalive 128;
    keepalive_requests 10000000;
    keepalive_timeout 60s;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://backends;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_buffer_size 16k;
      proxy_buffers 16 64k;
      proxy_max_temp_file_size 0;
    }
  }
}
`,
      );
      const log = join(dir, 'nginx-proxy.log');
      const child = start('nginx', ['-p', dir, '-e', join(dir, 'proxy-error.log'), '-c', conf], { cpu: PROXY_CPU, log });
      await waitReady('nginx', port, child, log);
      child.extraPids = await waitForChildPid(child.pid);
      return { child, pid: child.extraPids[0] };
    },
  },
  haproxy: {
    name: 'haproxy',
    note: `HAProxy ${toolVersion('haproxy')}, 1 thread, http-reuse always`,
    async start(ctx, port) {
      const conf = join(ctx.dir, 'haproxy.cfg');
      writeFileSync(
        conf,
        `global
  nbthread 1
  maxconn 8000
defaults
  mode http
  option http-keep-alive
  option forwardfor
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
frontend fe
  bind 127.0.0.1:${port}
  default_backend be
backend be
  balance roundrobin
  http-reuse always
${ctx.backends.ports.map((p, i) => `  server b${i + 1} 127.0.0.1:${p}`).join('\n')}
`,
      );
      const log = join(ctx.dir, 'haproxy.log');
      const child = start('haproxy', ['-db', '-f', conf], { cpu: PROXY_CPU, log });
      await waitReady('haproxy', port, child, log);
      return { child, pid: child.pid };
    },
  },
  'undici-minimal': nodePeer('undici-minimal', 'undici-minimal.mjs', 'node:http + undici Pool.stream, ~60 lines'),
  switchyard: switchyardTarget('switchyard', MAIN_PIPELINE),
  'reply-from': nodePeer('reply-from', 'fastify-reply-from.mjs', 'fastify 5 + @fastify/reply-from 12 (BalancedPool)'),
  'http-proxy': nodePeer('http-proxy', 'node-http-proxy.mjs', 'http-proxy 1.18, keep-alive agent'),
  // Experiments (not production code, not in the default targets): what a hand-written HTTP/1.1 client and/or server would save.
  'experimental-raw-client': nodePeer('experimental-raw-client', 'experimental-raw-client.mjs', 'EXPERIMENT: node:http + hand-written net.Socket client'),
  'experimental-raw-server': nodePeer('experimental-raw-server', 'experimental-raw-server.mjs', 'EXPERIMENT: hand-written net.Server + undici Pool.dispatch'),
  'experimental-raw-both': nodePeer('experimental-raw-both', 'experimental-raw-both.mjs', 'EXPERIMENT: hand-written server + hand-written client'),
};
if (ALT) TARGETS['switchyard-alt'] = switchyardTarget('switchyard-alt', MAIN_PIPELINE, undefined, ALT);
const DEFAULT_TARGETS = ['direct', 'nginx', 'haproxy', 'undici-minimal', 'switchyard', 'reply-from', 'http-proxy'];

function pluginCostTargets() {
  const list = [switchyardTarget('sy-none', []), switchyardTarget('sy-noop', ['noop'], 'round-robin + a third-party plugin that only calls next()')];
  for (const p of availablePlugins) list.push(switchyardTarget(`sy-${p}`, [p]));
  if (MAIN_PIPELINE.length > 1) list.push(switchyardTarget(`sy-${MAIN_PIPELINE.join('+')}`, MAIN_PIPELINE));
  if (ALT) {
    list.push(switchyardTarget('alt-none', [], undefined, ALT), switchyardTarget('alt-noop', ['noop'], 'round-robin + a third-party plugin that only calls next()', ALT));
    if (MAIN_PIPELINE.length > 0) list.push(switchyardTarget(`alt-${MAIN_PIPELINE.join('+')}`, MAIN_PIPELINE, undefined, ALT));
  }
  list.push(TARGETS['undici-minimal']);
  return list;
}

function toolVersion(tool) {
  const r = spawnSync(tool, ['-v'], { encoding: 'utf8' });
  const m = /(\d+\.\d+\.\d+)/.exec(`${r.stdout}${r.stderr}`);
  return m ? m[1] : '?';
}

// ---------------------------------------------------------------- load

function parseDurationMs(s) {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(s);
  if (!m) return NaN;
  const k = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2]];
  return Number(m[1]) * k;
}

function parseBytes(s) {
  const m = /^([\d.]+)(B|KB|MB|GB|TB)$/.exec(s);
  if (!m) return NaN;
  return Number(m[1]) * { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 }[m[2]];
}

export function parseWrk(out) {
  const pct = (p) => {
    const m = new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(out);
    return m ? parseDurationMs(m[1]) : NaN;
  };
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const tps = /Transfer\/sec:\s+(\S+)/.exec(out);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const errors = (sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0) + (non2xx ? Number(non2xx[1]) : 0);
  const total = /(\d+) requests in/.exec(out);
  const requests = total ? Number(total[1]) : NaN;
  const rawRps = rps ? Number(rps[1]) : NaN;
  return {
    // Only 2xx/3xx answers count: a proxy answering 503 fast is not fast.
    rps: requests > 0 ? (rawRps * Math.max(0, requests - (non2xx ? Number(non2xx[1]) : 0))) / requests : rawRps,
    rawRps,
    requests,
    bytesPerSec: tps ? parseBytes(tps[1]) : NaN,
    p50: pct(50),
    p99: pct(99),
    errors,
  };
}

function wrkArgs(scenario, port, seconds) {
  const args = ['-t1', `-c${scenario.connections}`, `-d${seconds}s`, '--timeout', '5s', '--latency'];
  if (scenario.script) args.push('-s', scenario.script);
  args.push(`http://127.0.0.1:${port}${scenario.path}`);
  return args;
}

async function startIdleClients(port, count) {
  const child = start(process.execPath, [join(BENCH, 'idle-clients.mjs'), String(port), String(count)], {
    cpu: LOAD_CPU,
    ipc: true,
  });
  const ready = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('idle clients did not connect within 20 s')), 20_000);
    child.on('message', (m) => {
      if (m.ready) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    child.once('exit', () => reject(new Error('idle client holder exited')));
  });
  return { child, ready };
}

async function countIdle(idle) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(NaN), 2000);
    idle.child.once('message', (m) => {
      clearTimeout(timer);
      resolve(m.open);
    });
    idle.child.send('count');
  });
}

/**
 * Waits (up to --quiet-wait seconds) until other processes on this shared
 * machine leave both cores nearly idle, so a round starts on a quiet machine
 * instead of being repeated after the fact.
 */
async function waitQuiet() {
  const deadline = Date.now() + QUIET_WAIT * 1000;
  let waited = false;
  for (;;) {
    const a = coreTicks();
    await sleep(500);
    const b = coreTicks();
    const load = Math.max(...[PROXY_CPU, LOAD_CPU].map((c) => (b[c].busy - a[c].busy) / Math.max(1, b[c].total - a[c].total))) * 100;
    if (load <= QUIET) {
      if (waited) console.error(`  machine quiet again (${fmt(load, 0)}% busy)`);
      return;
    }
    if (Date.now() > deadline) {
      console.error(`  machine still ${fmt(load, 0)}% busy after ${QUIET_WAIT} s; measuring anyway`);
      return;
    }
    if (!waited) console.error(`  other processes keep a core ${fmt(load, 0)}% busy; waiting for quiet`);
    waited = true;
  }
}

/** One measured round of one target: warmup, load, samples. */
async function measure(ctx, target, running, scenario) {
  const port = running.port;
  await waitQuiet();
  let idle;
  if (scenario.idle) idle = await startIdleClients(port, scenario.idle);
  try {
    if (WARMUP > 0) await run('wrk', wrkArgs(scenario, port, WARMUP), LOAD_CPU);
    const proxyPids = running.pid ? [running.pid] : [];
    const loadPids = [...ctx.backends.pids];
    const ticks0 = coreTicks();
    const proxy0 = proxyPids.reduce((a, p) => a + cpuTicks(p), 0);
    const load0 = loadPids.reduce((a, p) => a + cpuTicks(p), 0);
    const wrkPromise = run('wrk', wrkArgs(scenario, port, DURATION), LOAD_CPU);
    // wrk's own CPU counts as load on its core; read it until just before it exits.
    const wrkPid = wrkPromise.child.pid;
    let wrkTicks = 0;
    const wrkSampler = setInterval(() => {
      const t = cpuTicks(wrkPid);
      if (t > 0) wrkTicks = t;
    }, 200);
    const out = await wrkPromise;
    clearInterval(wrkSampler);
    const ticks1 = coreTicks();
    const proxy1 = proxyPids.reduce((a, p) => a + cpuTicks(p), 0);
    const load1 = loadPids.reduce((a, p) => a + cpuTicks(p), 0);
    const rss = running.pid ? rssKb(running.pid) : undefined;
    const r = parseWrk(out);
    const span = (c) => Math.max(1, ticks1[c].total - ticks0[c].total);
    const busy = (c) => ticks1[c].busy - ticks0[c].busy;
    const proxyCpu = (proxy1 - proxy0) / span(PROXY_CPU);
    const loadCpu = (load1 - load0 + wrkTicks) / span(LOAD_CPU);
    r.proxyCpu = running.pid ? proxyCpu * 100 : NaN;
    // What other processes on this shared machine took from the two cores.
    // (With no proxy, as for "direct", nothing runs on the proxy core, so its load is no noise.)
    r.noiseProxyCore = running.pid ? Math.max(0, (busy(PROXY_CPU) / span(PROXY_CPU) - proxyCpu) * 100) : 0;
    r.noiseLoadCore = Math.max(0, (busy(LOAD_CPU) / span(LOAD_CPU) - loadCpu) * 100);
    r.rssMb = rss === undefined ? NaN : rss / 1024;
    if (idle) {
      r.idleOpen = await countIdle(idle);
      r.idleAnswered = idle.ready.answered;
    }
    return r;
  } finally {
    if (idle) await stop(idle.child);
  }
}

// ---------------------------------------------------------------- report

const median = (xs) => {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
};
const fmtInt = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–');
const fmt = (n, d = 2) => (Number.isFinite(n) ? n.toFixed(d) : '–');

function summarize(rounds) {
  const rps = rounds.map((r) => r.rps);
  const m = median(rps);
  return {
    rps: m,
    spread: (Math.max(...rps) - Math.min(...rps)) / m,
    p50: median(rounds.map((r) => r.p50)),
    p99: median(rounds.map((r) => r.p99)),
    bytesPerSec: median(rounds.map((r) => r.bytesPerSec)),
    rssMb: rounds.some((r) => Number.isFinite(r.rssMb)) ? Math.max(...rounds.map((r) => r.rssMb).filter(Number.isFinite)) : NaN,
    proxyCpu: median(rounds.map((r) => r.proxyCpu)),
    noise: Math.max(...rounds.map((r) => Math.max(r.noiseProxyCore, r.noiseLoadCore))),
    errors: rounds.reduce((a, r) => a + r.errors, 0),
    idleOpen: Math.min(...rounds.map((r) => r.idleOpen ?? Infinity)),
  };
}

function table(scenario, targets, results) {
  const s = {};
  for (const t of targets) s[t.name] = summarize(results[t.name]);
  const nginx = s.nginx?.rps;
  const minimal = s['undici-minimal'];
  const minimalRounds = results['undici-minimal'];
  // Each round's ratio to the minimal proxy measured in that same round: a
  // drift of the machine's speed between rounds then cancels out.
  const paired = (name) =>
    minimalRounds ? median(results[name].map((r, i) => r.rps / (minimalRounds[i]?.rps ?? NaN))) : NaN;
  const big = scenario.path === '/1m';
  const lines = [
    `### ${scenario.label}`,
    '',
    `| target | req/s | ${big ? 'MB/s | ' : ''}spread | p50 ms | p99 ms | RSS MB | proxy CPU % | × nginx | × undici-minimal | × minimal, per round | p99 × minimal | errors | noise % |${scenario.idle ? ' idle open |' : ''}`,
    `|---|---:|${big ? '---:|' : ''}---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|${scenario.idle ? '---:|' : ''}`,
  ];
  for (const t of targets) {
    const r = s[t.name];
    lines.push(
      `| ${t.name} | ${fmtInt(r.rps)} | ${big ? `${fmtInt(r.bytesPerSec / 1024 ** 2)} | ` : ''}±${fmt((r.spread * 100) / 2, 1)}% | ${fmt(r.p50)} | ${fmt(r.p99)} | ${fmt(r.rssMb, 0)} | ${fmt(r.proxyCpu, 0)} | ${
        nginx ? fmt(r.rps / nginx) : '–'
      } | ${minimal ? fmt(r.rps / minimal.rps) : '–'} | ${fmt(paired(t.name))} | ${minimal ? fmt(r.p99 / minimal.p99) : '–'} | ${r.errors} | ${fmt(r.noise, 0)} |${
        scenario.idle ? ` ${Number.isFinite(r.idleOpen) ? r.idleOpen : '–'} |` : ''
      }`,
    );
  }
  const noisy = targets.filter((t) => s[t.name].noise > MAX_NOISE).map((t) => `${t.name} (${fmt(s[t.name].noise, 0)}%)`);
  lines.push('', ...targetChecks(targets, results));
  lines.push(
    `Medians of ${ROUNDS} interleaved rounds (order rotated each round) of ${DURATION} s (after ${WARMUP} s warmup each); × minimal, per round = the median of each round's ratio to undici-minimal in the same round (robust to drift between rounds); spread = half the max–min range of req/s; RSS = max VmRSS at the end of a round; proxy CPU = the proxy's share of its core; noise = the most CPU other processes on this shared machine took from either core in any round of that target; req/s counts only 2xx/3xx answers, errors = non-2xx answers + socket errors over all rounds.` +
      (noisy.length ? ` Rounds where other processes still took > ${MAX_NOISE}% of a core after retries: ${noisy.join(', ')}.` : ''),
  );
  return { text: lines.join('\n'), summary: s };
}

// The issue's acceptance targets for Switchyard (round-robin + headers +
// retry), each checked on per-round ratios: every round measures Switchyard
// and the peer minutes apart at most, so the host's drift between rounds,
// which on a shared VM is larger than the margins, cancels out.
const PEER_TARGETS = [
  { peer: 'undici-minimal', what: 'req/s', atLeast: 1.0 },
  { peer: 'undici-minimal', what: 'p99', atMost: 1.2 },
  { peer: 'http-proxy', what: 'req/s', atLeast: 1.8 },
  { peer: 'reply-from', what: 'req/s', atLeast: 1.6 },
];

/** Lines of a table checking Switchyard against PEER_TARGETS, when both were measured. */
function targetChecks(targets, results) {
  const names = new Set(targets.map((t) => t.name));
  const checks = PEER_TARGETS.filter((c) => names.has('switchyard') && names.has(c.peer));
  if (checks.length === 0) return [];
  const lines = ['| switchyard ÷ peer, per round | rounds | median | target | met |', '|---|---|---:|---:|---|'];
  for (const c of checks) {
    const key = c.what === 'p99' ? 'p99' : 'rps';
    const ratios = results.switchyard.map((r, i) => r[key] / (results[c.peer][i]?.[key] ?? NaN));
    const m = median(ratios);
    const met = c.atLeast !== undefined ? m >= c.atLeast : m <= c.atMost;
    lines.push(
      `| ${c.what} ÷ ${c.peer} | ${ratios.map((x) => fmt(x)).join(', ')} | ${fmt(m)} | ${c.atLeast !== undefined ? `≥ ${c.atLeast.toFixed(1)}` : `≤ ${c.atMost.toFixed(1)}`} | ${met ? 'yes' : '**no**'} |`,
    );
  }
  lines.push('');
  return lines;
}

/**
 * Each pipeline against no plugins, as the median of per-round ratios (the
 * two measured in the same round) as well as of medians: on a host whose
 * speed moves by more than a plugin costs, only the paired figure means much.
 */
function pluginCostTable(targets, summary, rounds) {
  const base = summary['sy-none'];
  if (!base) return '';
  const lines = [
    '### Per-plugin cost (GET 100 B, 64 connections; Switchyard with one plugin vs none)',
    '',
    '| pipeline | req/s | Δ req/s vs none, medians | Δ req/s vs none, per round | p99 ms |',
    '|---|---:|---:|---:|---:|',
  ];
  const pct = (ratio) => `${fmt((ratio - 1) * 100, 1)}%`;
  for (const t of targets) {
    if (!t.name.startsWith('sy-')) continue;
    const r = summary[t.name];
    const perRound = median(rounds[t.name].map((x, i) => x.rps / (rounds['sy-none'][i]?.rps ?? NaN)));
    lines.push(`| ${t.note} | ${fmtInt(r.rps)} | ${t.name === 'sy-none' ? '—' : pct(r.rps / base.rps)} | ${t.name === 'sy-none' ? '—' : pct(perRound)} | ${fmt(r.p99)} |`);
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------- main

function machineNotes() {
  const cpus = os.cpus();
  return [
    `- machine: ${cpus.length} × ${cpus[0]?.model ?? '?'}, ${Math.round(os.totalmem() / 1024 ** 3)} GB, load average at start ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
    `- node ${process.version}, nginx ${toolVersion('nginx')}, HAProxy ${toolVersion('haproxy')}, ${spawnSync('wrk', ['-v'], { encoding: 'utf8' }).stdout.split('\n')[0].trim()}`,
    `- proxy under test pinned to core ${PROXY_CPU}; wrk (1 thread), 3 nginx backends (1 worker) and idle clients on core ${LOAD_CPU}`,
    `- Switchyard plugins found: ${availablePlugins.join(', ') || 'none'}; main pipeline: round-robin${MAIN_PIPELINE.map((p) => ` + ${p}`).join('')}`,
    `- build: ${buildIdentity()}`,
  ].join('\n');
}

/** Which code was measured: the commit, whether the tree had changes, when dist/ was built. */
function buildIdentity() {
  const git = (args) => spawnSync('git', ['-C', ROOT, ...args], { encoding: 'utf8' }).stdout?.trim() ?? '';
  const head = git(['rev-parse', '--short', 'HEAD']) || 'unknown commit';
  const dirty = git(['status', '--porcelain', '--untracked-files=no', '--', 'src', 'plugins']) ? ' + uncommitted changes in src/ or plugins/' : '';
  return `${head}${dirty}; dist/src/cli.js built ${statSync(CLI).mtime.toISOString()}`;
}

function checkTools() {
  const missing = ['wrk', 'nginx', 'haproxy', 'taskset'].filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
  if (missing.length) {
    console.error(`missing: ${missing.join(', ')} — install the Debian packages wrk, nginx-light, haproxy, util-linux`);
    process.exit(2);
  }
  if (!existsSync(CLI)) {
    console.error(`${CLI} not found: build first with \`npm run build\``);
    process.exit(2);
  }
  if (os.cpus().length < 2) console.error('warning: fewer than 2 cores; proxy and load will share one');
}

async function startTarget(ctx, t, startOpts) {
  const port = await freePort();
  const r = await t.start(ctx, port, startOpts);
  return { port: r.port ?? port, pid: r.pid, child: r.child };
}

async function startTargets(ctx, targets, startOpts) {
  const running = {};
  for (const t of targets) running[t.name] = await startTarget(ctx, t, startOpts);
  return running;
}

async function benchmark(ctx, targets, scenarioNames) {
  const running = await startTargets(ctx, targets);
  const out = [];
  const summaries = {};
  const roundsByScenario = {};
  for (const name of scenarioNames) {
    const scenario = SCENARIOS[name];
    const results = Object.fromEntries(targets.map((t) => [t.name, []]));
    for (let round = 1; round <= ROUNDS; round++) {
      // Each round starts one target later (A B C, B C A, C A B …): a drift in
      // the machine's speed within a round then favours no target.
      for (let k = 0; k < targets.length; k++) {
        const t = targets[(k + round - 1) % targets.length];
        // A fresh process per round: how fast one Node process runs depends on
        // its JIT decisions and heap layout, which differ by several percent from
        // one process to the next; the median over rounds then spans processes.
        if (!opts['same-process'] && t.node && (round > 1 || out.length > 0)) {
          await stop(running[t.name].child);
          running[t.name] = await startTarget(ctx, t);
        }
        let r;
        for (let attempt = 0; attempt < 3; attempt++) {
          r = await measure(ctx, t, running[t.name], scenario);
          const noise = Math.max(r.noiseProxyCore, r.noiseLoadCore);
          if (noise <= MAX_NOISE) break;
          console.error(`  ${name} round ${round} ${t.name}: other processes took ${fmt(noise, 0)}% of a core; repeating`);
        }
        results[t.name].push(r);
        console.error(
          `  ${name} round ${round}/${ROUNDS} ${t.name.padEnd(22)} ${fmtInt(r.rps).padStart(8)} req/s  p99 ${fmt(r.p99)} ms  rss ${fmt(r.rssMb, 0)} MB  cpu ${fmt(r.proxyCpu, 0)}%  noise ${fmt(r.noiseProxyCore, 0)}/${fmt(r.noiseLoadCore, 0)}%${r.errors ? `  errors ${r.errors}` : ''}`,
        );
        const c = running[t.name].child;
        if (c && (c.exitCode !== null || c.signalCode !== null)) throw new Error(`${t.name} exited during the run; see ${ctx.dir}`);
      }
    }
    const { text, summary } = table(scenario, targets, results);
    summaries[name] = summary;
    roundsByScenario[name] = results;
    out.push(text);
    console.log(`\n${text}\n`);
  }
  return { text: out.join('\n\n'), summaries, roundsByScenario, running };
}

async function profile(ctx, targets, scenarioName) {
  const scenario = SCENARIOS[scenarioName];
  const texts = [];
  for (const t of targets) {
    if (!t.node) {
      console.error(`--profile: ${t.name} is not a Node process; skipped`);
      continue;
    }
    const profDir = join(ctx.dir, `prof-${t.name}`);
    mkdirSync(profDir, { recursive: true });
    const port = await freePort();
    const spawned = Date.now();
    const r = await t.start(ctx, port, { nodeFlags: ['--cpu-prof', `--cpu-prof-dir=${profDir}`, '--cpu-prof-interval=250'] });
    await run('wrk', wrkArgs(scenario, port, WARMUP), LOAD_CPU);
    const loadFrom = Date.now() - spawned;
    const out = parseWrk(await run('wrk', wrkArgs(scenario, port, DURATION), LOAD_CPU));
    const loadTo = Date.now() - spawned;
    await stop(r.child, 'SIGINT');
    const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
    if (!file) throw new Error(`${t.name} wrote no .cpuprofile into ${profDir}`);
    const keep = join(BENCH, 'out');
    mkdirSync(keep, { recursive: true });
    const saved = join(keep, `${t.name}-${stamp()}.cpuprofile`);
    writeFileSync(saved, readFileSync(join(profDir, file)));
    // Only the measured load window: startup (module loading, schema compiling) and shutdown left out.
    const summary = summarizeProfile(JSON.parse(readFileSync(saved, 'utf8')), { root: ROOT, fromMs: loadFrom, toMs: loadTo });
    const text = `### CPU profile: ${t.name} (${t.note}), ${fmtInt(out.rps)} req/s under ${scenario.label} (profiler on, 250 µs sampling)\n\nprofile: ${saved} (open in Chrome DevTools → Performance, or speedscope); summary of the ${DURATION} s load window: \`node bench/profile-summary.mjs FILE --from-ms ${loadFrom} --to-ms ${loadTo}\`\n\n${formatSummary(summary, 25)}`;
    console.log(`\n${text}\n`);
    texts.push(text);
  }
  return texts.join('\n\n');
}

/**
 * RSS over a long run: N requests of one scenario in back-to-back 5 s wrk
 * runs, RSS read after each, one process per target. Flat means every
 * sample after the first 100,000 requests (warm: JIT done, pools full)
 * stays within ±10% of that first warm sample.
 */
async function soak(ctx, targets, scenarioName, total) {
  const scenario = SCENARIOS[scenarioName];
  const texts = [];
  for (const t of targets) {
    await waitQuiet();
    const running = await startTarget(ctx, t);
    const samples = [];
    let served = 0;
    const started = Date.now();
    try {
      while (served < total) {
        const r = parseWrk(await run('wrk', wrkArgs(scenario, running.port, 5), LOAD_CPU));
        served += Number.isFinite(r.requests) ? r.requests : 0;
        samples.push({ served, rssMb: rssKb(running.pid) / 1024, rps: r.rps, errors: r.errors });
        console.error(`  soak ${t.name} ${fmtInt(served).padStart(10)} requests  rss ${fmt(samples.at(-1).rssMb, 1)} MB  ${fmtInt(r.rps)} req/s`);
        if (r.requests === 0 || !Number.isFinite(r.requests)) throw new Error(`${t.name} served nothing in 5 s`);
      }
    } finally {
      await stop(running.child);
    }
    const warm = samples.find((s) => s.served >= 100_000) ?? samples[0];
    const after = samples.filter((s) => s.served >= warm.served);
    const min = Math.min(...after.map((s) => s.rssMb));
    const max = Math.max(...after.map((s) => s.rssMb));
    const last = samples.at(-1).rssMb;
    const drift = Math.max(Math.abs(max - warm.rssMb), Math.abs(min - warm.rssMb)) / warm.rssMb;
    const rows = samples.map((s) => `| ${fmtInt(s.served)} | ${fmt(s.rssMb, 1)} | ${fmtInt(s.rps)} | ${s.errors} |`).join('\n');
    const text =
      `### Soak: ${t.name} (${t.note}), ${fmtInt(served)} requests of ${scenario.label} in ${Math.round((Date.now() - started) / 1000)} s\n\n` +
      `RSS at ${fmtInt(warm.served)} requests (warm) **${fmt(warm.rssMb, 1)} MB**; after that min ${fmt(min, 1)}, max ${fmt(max, 1)}, last ${fmt(last, 1)} MB: ` +
      `largest departure **${fmt(drift * 100, 1)}%** (${drift <= 0.1 ? 'flat: within ±10%' : 'NOT within ±10%'}).\n\n` +
      `<details><summary>every 5 s</summary>\n\n| requests | RSS MB | req/s | errors |\n|---:|---:|---:|---:|\n${rows}\n\n</details>`;
    console.log(`\n${text}\n`);
    texts.push(text);
  }
  return texts.join('\n\n');
}

function stamp() {
  return new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
}

async function main() {
  checkTools();
  // The harness itself (sampling, idle sockets) stays off the proxy's core.
  spawnSync('taskset', ['-pc', LOAD_CPU, String(process.pid)], { stdio: 'ignore' });
  const dir = mkdtempSync(join(os.tmpdir(), 'switchyard-bench-'));
  tempDir = dir;
  const ctx = { dir };
  const started = Date.now();
  try {
    ctx.backends = await startBackends(dir);
    let targets;
    let scenarioNames;
    if (opts['plugin-cost']) {
      targets = pluginCostTargets();
      scenarioNames = opts.scenarios ? opts.scenarios.split(',') : ['get64'];
    } else {
      const names = opts.targets ? opts.targets.split(',') : opts.profile ? ['switchyard'] : opts.soak ? ['switchyard', 'undici-minimal'] : DEFAULT_TARGETS;
      for (const n of names) if (!TARGETS[n]) throw new Error(`unknown target "${n}"; known: ${Object.keys(TARGETS).join(', ')}`);
      targets = names.map((n) => TARGETS[n]);
      scenarioNames = !opts.scenarios ? QUICK : opts.scenarios === 'all' ? Object.keys(SCENARIOS) : opts.scenarios.split(',');
    }
    for (const n of scenarioNames) if (!SCENARIOS[n]) throw new Error(`unknown scenario "${n}"; known: ${Object.keys(SCENARIOS).join(', ')}`);

    const command = `node bench/run.mjs ${process.argv.slice(2).join(' ')}`.trim();
    const header = `## Run ${new Date().toISOString()}\n\n\`${command}\`\n\n${machineNotes()}\n\ntargets:\n${targets.map((t) => `- ${t.name}: ${t.note}`).join('\n')}\n`;
    console.log(header);

    let body;
    if (opts.profile) body = await profile(ctx, targets, opts.scenarios ? scenarioNames[0] : 'get64');
    else if (opts.soak) body = await soak(ctx, targets, opts.scenarios ? scenarioNames[0] : 'get64', Number(opts.soak));
    else {
      const { text, summaries, roundsByScenario } = await benchmark(ctx, targets, scenarioNames);
      body = text;
      if (opts['plugin-cost']) {
        const pc = pluginCostTable(targets, summaries[scenarioNames[0]], roundsByScenario[scenarioNames[0]]);
        console.log(`\n${pc}\n`);
        body += `\n\n${pc}`;
      }
    }
    const outDir = join(BENCH, 'out');
    mkdirSync(outDir, { recursive: true });
    const file = join(outDir, `results-${stamp()}.md`);
    writeFileSync(file, `${header}\n${body}\n\n(${Math.round((Date.now() - started) / 1000)} s)\n`);
    console.error(`written: ${file}`);
  } finally {
    await Promise.all([...children].map((c) => stop(c)));
    if (opts.keep) console.error(`kept: ${dir}`);
    else removeTempDir();
  }
}

// Only as a script: importing this module (for parseWrk) must not start a benchmark.
if (import.meta.url === `file://${process.argv[1]}`) {
  await main().catch((err) => {
    console.error(err.stack ?? err);
    killAllNow();
    process.exit(1);
  });
}
