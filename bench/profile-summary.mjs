#!/usr/bin/env node
// Aggregates a V8 .cpuprofile (from `node --cpu-prof`) into self and total
// time per function, and per owner: Switchyard's core and plugins, undici,
// node:http, streams, net, native, GC. Flame graphs show the shape; this
// shows the numbers to compare between runs.
//
//   node bench/profile-summary.mjs FILE.cpuprofile [--top 25] [--from-ms MS] [--to-ms MS]
import { readFileSync } from 'node:fs';

const ROOT_DEFAULT = new URL('..', import.meta.url).pathname;

/** Which part of the stack a frame belongs to, from its script URL. */
export function ownerOf(url, functionName, root = ROOT_DEFAULT) {
  if (functionName === '(garbage collector)') return 'gc';
  if (functionName === '(idle)') return 'idle';
  if (functionName === '(program)') return 'program (unattributed VM/native)';
  if (functionName === '(root)') return 'root';
  if (url === '') return 'native (C++ bindings, builtins)';
  // The only WebAssembly in these processes is undici's llhttp parser.
  if (url.startsWith('wasm://')) return 'undici';
  const path = url.startsWith('file://') ? url.slice(7) : url;
  if (path.startsWith(root)) {
    const rel = path.slice(root.length);
    if (rel.startsWith('dist/src/') || rel.startsWith('src/')) return 'switchyard core';
    if (rel.startsWith('dist/plugins/') || rel.startsWith('plugins/')) return 'switchyard plugins';
    if (rel.startsWith('bench/')) return 'bench peer';
  }
  const nm = path.lastIndexOf('node_modules/');
  if (nm !== -1) {
    const rest = path.slice(nm + 13).split('/');
    const pkg = rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
    return pkg;
  }
  if (/^node:(_http_|http$|internal\/http)/.test(url)) return 'node:http';
  if (/^node:(internal\/streams|stream|internal\/webstreams)/.test(url)) return 'node:streams';
  if (/^node:(net|internal\/stream_base_commons|internal\/net|dgram)/.test(url)) return 'node:net';
  if (/^node:(events|internal\/events)/.test(url)) return 'node:events';
  if (/^node:internal\/(process\/task_queues|timers|async_hooks)|^node:timers/.test(url)) return 'node:timers/microtasks';
  if (url.startsWith('node:')) return 'node other';
  return 'other';
}

function shortUrl(url, root) {
  let path = url.startsWith('file://') ? url.slice(7) : url;
  if (path.startsWith(root)) path = path.slice(root.length);
  const nm = path.lastIndexOf('node_modules/');
  if (nm !== -1) path = path.slice(nm + 13);
  return path;
}

/**
 * Self time: each sample's duration (the gap to the next sample) goes to the
 * function on top of the stack. Total time: the same duration goes to every
 * distinct function on the stack, once even when it recurses. `fromMs`/`toMs`
 * (from the profile's start) keep only the load window, leaving out startup
 * and shutdown. `caller` is the JS function that spends the most time in a
 * function (native frames are attributed through it).
 */
export function summarizeProfile(profile, { root = ROOT_DEFAULT, fromMs = 0, toMs = Infinity } = {}) {
  const nodes = new Map();
  for (const n of profile.nodes) nodes.set(n.id, n);
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  const selfUs = new Map();
  const { samples, timeDeltas } = profile;
  let t = 0;
  for (let i = 0; i < samples.length; i++) {
    t += timeDeltas[i];
    const d = i + 1 < timeDeltas.length ? timeDeltas[i + 1] : 0;
    if (d <= 0 || t < fromMs * 1000 || t > toMs * 1000) continue;
    selfUs.set(samples[i], (selfUs.get(samples[i]) ?? 0) + d);
  }

  const keyOf = (n) => {
    const f = n.callFrame;
    return `${f.functionName || '(anonymous)'}\u0000${f.url}\u0000${f.lineNumber}`;
  };
  const fns = new Map();
  const fnOf = (n) => {
    const key = keyOf(n);
    let f = fns.get(key);
    if (!f) {
      const cf = n.callFrame;
      f = {
        name: cf.functionName || '(anonymous)',
        where: cf.url ? `${shortUrl(cf.url, root)}:${cf.lineNumber + 1}` : '',
        owner: ownerOf(cf.url, cf.functionName, root),
        selfUs: 0,
        totalUs: 0,
        callers: new Map(),
      };
      fns.set(key, f);
    }
    return f;
  };

  let busyUs = 0;
  let idleUs = 0;
  const owners = new Map();
  for (const [id, us] of selfUs) {
    const n = nodes.get(id);
    const f = fnOf(n);
    f.selfUs += us;
    if (f.owner === 'idle') {
      idleUs += us;
      continue;
    }
    busyUs += us;
    owners.set(f.owner, (owners.get(f.owner) ?? 0) + us);
    // The first caller up the stack that is JavaScript (not native, not the VM).
    for (let cur = parent.get(id); cur !== undefined; cur = parent.get(cur)) {
      const c = nodes.get(cur).callFrame;
      if (c.url === '' || c.url.startsWith('wasm://')) continue;
      const label = `${c.functionName || '(anonymous)'} (${shortUrl(c.url, root).replace(/^node:/, '')})`;
      f.callers.set(label, (f.callers.get(label) ?? 0) + us);
      break;
    }
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const g = fnOf(nodes.get(cur));
      if (seen.has(g)) continue;
      seen.add(g);
      g.totalUs += us;
    }
  }
  return {
    busyUs,
    idleUs,
    owners: [...owners].map(([owner, us]) => ({ owner, us })).sort((a, b) => b.us - a.us),
    functions: [...fns.values()]
      .filter((f) => f.owner !== 'idle' && f.owner !== 'root')
      .map((f) => ({ ...f, caller: [...f.callers].sort((a, b) => b[1] - a[1])[0]?.[0] ?? '' })),
  };
}

export function formatSummary(s, top = 25) {
  const pct = (us) => ((us / s.busyUs) * 100).toFixed(1);
  const ms = (us) => (us / 1000).toFixed(0);
  const lines = [];
  lines.push(`busy ${ms(s.busyUs)} ms sampled, idle ${ms(s.idleUs)} ms (${((s.idleUs / (s.busyUs + s.idleUs)) * 100).toFixed(1)}% of the profile). Percentages below are of busy time.`);
  lines.push('', '| owner | self % | self ms |', '|---|---:|---:|');
  for (const o of s.owners) lines.push(`| ${o.owner} | ${pct(o.us)} | ${ms(o.us)} |`);
  lines.push('', `Top ${top} functions by self time:`, '', '| # | self % | total % | function | where | owner | mostly called from |', '|---:|---:|---:|---|---|---|---|');
  const bySelf = [...s.functions].sort((a, b) => b.selfUs - a.selfUs).slice(0, top);
  bySelf.forEach((f, i) => lines.push(`| ${i + 1} | ${pct(f.selfUs)} | ${pct(f.totalUs)} | ${f.name} | ${f.where} | ${f.owner} | ${f.caller} |`));
  const ours = s.functions.filter((f) => f.owner.startsWith('switchyard') || f.owner === 'bench peer').sort((a, b) => b.totalUs - a.totalUs);
  if (ours.length) {
    lines.push('', 'Our own functions by total time (self + what they call):', '', '| total % | self % | function | where |', '|---:|---:|---|---|');
    for (const f of ours.slice(0, 20)) lines.push(`| ${pct(f.totalUs)} | ${pct(f.selfUs)} | ${f.name} | ${f.where} |`);
  }
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: node bench/profile-summary.mjs FILE.cpuprofile [--top N] [--from-ms MS] [--to-ms MS]');
    process.exit(2);
  }
  const arg = (name, dflt) => {
    const i = process.argv.indexOf(name);
    return i === -1 ? dflt : Number(process.argv[i + 1]);
  };
  const summary = summarizeProfile(JSON.parse(readFileSync(file, 'utf8')), { fromMs: arg('--from-ms', 0), toMs: arg('--to-ms', Infinity) });
  console.log(formatSummary(summary, arg('--top', 25)));
}
