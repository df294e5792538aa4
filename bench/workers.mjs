#!/usr/bin/env node
// How Switchyard's throughput scales with `workers` on this machine: the same
// config (round-robin + headers + retry, 3 nginx backends answering 100 B)
// with workers = 1, workers = 2 (SCHED_NONE, the default) and workers = 2
// with NODE_CLUSTER_SCHED_POLICY=rr, in interleaved rounds, wrk at 64
// connections. Nothing is pinned: on a 2-core machine the proxy, wrk and the
// backends compete for the same two cores, which is the point of the
// measurement (and its limit: see bench/RESULTS.md).
//
//   npm run build && node bench/workers.mjs [--rounds 3] [--duration 10] [--close]
//
// --close: every request on a new connection (wrk sends Connection: close),
// where the scheduling policy matters most: with SCHED_RR the primary
// accepts every connection and passes it to a worker over IPC.
//
// Every process started here is stopped on exit, on error and on Ctrl-C.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort } from './free-port.mjs';
import { start, startNginxBackends, waitReady } from './local-processes.mjs';
import { MAIN_PIPELINE, ROOT, switchyardToml } from './switchyard-config.mjs';

// The lb command as users run it (bin/lb; LB_NODE_FLAGS, if set, reaches node and its workers).
const BIN = join(ROOT, 'bin/lb');
const { values: opts } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    close: { type: 'boolean', default: false },
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '64' },
    threads: { type: 'string', default: '2' },
  },
});
const ROUNDS = Number(opts.rounds);
const DURATION = Number(opts.duration);

/** utime + stime of `pid` and its children (the cluster's workers), in clock ticks. */
function treeTicks(pid) {
  let total = 0;
  const visit = (p) => {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      total += Number(fields[11]) + Number(fields[12]);
      const kids = readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim();
      for (const k of kids ? kids.split(' ') : []) visit(Number(k));
    } catch {}
  };
  visit(pid);
  return total;
}

function parseWrk(out) {
  const ms = (text) => {
    const m = /^([\d.]+)(us|ms|s)$/.exec(text);
    return m ? Number(m[1]) * { us: 0.001, ms: 1, s: 1000 }[m[2]] : NaN;
  };
  const pct = (p) => ms(new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(out)?.[1] ?? '');
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]),
    p50: pct(50),
    p99: pct(99),
    errors: (sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0) + (non2xx ? Number(non2xx[1]) : 0),
  };
}

const dir = mkdtempSync(join(os.tmpdir(), 'lb-workers-bench-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

const ports = [await freePort(), await freePort(), await freePort()];
await startNginxBackends(dir, ports);

const targets = [
  { name: 'workers = 1', workers: 1, env: {} },
  { name: 'workers = 2 (SCHED_NONE)', workers: 2, env: {} },
  { name: 'workers = 2 (SCHED_RR)', workers: 2, env: { NODE_CLUSTER_SCHED_POLICY: 'rr' } },
];

async function startTarget(target) {
  const port = await freePort();
  const admin = await freePort();
  const file = join(dir, `lb-${target.workers}-${Object.keys(target.env).length}.toml`);
  writeFileSync(
    file,
    switchyardToml(
      port,
      ports.map((p) => `http://127.0.0.1:${p}`),
      MAIN_PIPELINE,
      { workers: target.workers, adminPort: admin },
    ),
  );
  const child = start(BIN, ['run', '--no-watch', '--log-level', 'warn', '-c', file], target.env);
  await waitReady(port, target.name, child);
  return { port, admin, child };
}

async function stopTarget({ child }) {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  process.kill(-child.pid, 'SIGTERM');
  const timer = setTimeout(() => process.kill(-child.pid, 'SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

function wrk(port, seconds) {
  const close = opts.close ? ['-H', 'Connection: close'] : [];
  const res = spawnSync('wrk', [`-t${opts.threads}`, `-c${opts.connections}`, `-d${seconds}s`, '--timeout', '5s', '--latency', ...close, `http://127.0.0.1:${port}/`], {
    encoding: 'utf8',
    timeout: (seconds + 15) * 1000,
  });
  return res.stdout;
}

/** Requests each worker served so far, from the primary's /status. */
async function workerRequests(admin) {
  const res = await fetch(`http://127.0.0.1:${admin}/status`);
  const status = await res.json();
  return status.workers.map((w) => w.requests);
}

const results = new Map(targets.map((t) => [t.name, []]));
const tick = 100; // USER_HZ on Linux
for (let round = 1; round <= ROUNDS; round++) {
  for (const target of targets) {
    const running = await startTarget(target);
    try {
      wrk(running.port, 2); // warm-up: JIT, upstream keep-alive
      const warm = target.workers > 1 ? await workerRequests(running.admin) : [];
      const before = treeTicks(running.child.pid);
      const t0 = Date.now();
      const out = wrk(running.port, DURATION);
      const cpu = ((treeTicks(running.child.pid) - before) / tick / ((Date.now() - t0) / 1000)) * 100;
      // Share of the measured requests the busiest worker served (0.5 = even).
      let busiest = NaN;
      if (target.workers > 1) {
        const done = (await workerRequests(running.admin)).map((n, i) => n - (warm[i] ?? 0));
        busiest = Math.max(...done) / done.reduce((a, b) => a + b, 0);
      }
      const r = { ...parseWrk(out), cpu, busiest };
      results.get(target.name).push(r);
      console.error(
        `round ${round} ${target.name}: ${Math.round(r.rps)} req/s, p50 ${r.p50} ms, p99 ${r.p99} ms, proxy CPU ${Math.round(cpu)}%, busiest worker ${Number.isNaN(busiest) ? '–' : `${Math.round(busiest * 100)}%`}, errors ${r.errors}`,
      );
    } finally {
      await stopTarget(running);
    }
  }
}

const base = results.get(targets[0].name);
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const baseRps = mean(base.map((r) => r.rps));
console.log(
  `\n${os.cpus().length} cores (${os.cpus()[0]?.model}), node ${process.version}; wrk -t${opts.threads} -c${opts.connections}${opts.close ? ' -H "Connection: close"' : ' (keep-alive)'}, ${DURATION} s × ${ROUNDS} interleaved rounds; 3 nginx backends (1 worker); nothing pinned\n`,
);
console.log('| target | req/s | × workers = 1 | p50 ms | p99 ms | proxy CPU % (all its processes) | busiest worker\'s share (per round) | errors |');
console.log('|---|---:|---:|---:|---:|---:|---|---:|');
for (const [name, rs] of results) {
  const rps = mean(rs.map((r) => r.rps));
  console.log(
    `| ${name} | ${Math.round(rps).toLocaleString('en-US')} | ${(rps / baseRps).toFixed(2)} | ${mean(rs.map((r) => r.p50)).toFixed(2)} | ${mean(rs.map((r) => r.p99)).toFixed(2)} | ${Math.round(mean(rs.map((r) => r.cpu)))} | ${rs.map((r) => (Number.isNaN(r.busiest) ? '–' : `${Math.round(r.busiest * 100)}%`)).join(', ')} | ${rs.reduce((a, r) => a + r.errors, 0)} |`,
  );
}
