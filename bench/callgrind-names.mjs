#!/usr/bin/env node
// Self instructions per function of one callgrind dump, with the JIT code
// callgrind cannot name (???:0x…) named from node's --perf-basic-prof map,
// and summed by where the code comes from (undici, node:http, the peer, V8
// builtins, GC…). For dumps of `bench/instructions.mjs --keep --node-flags=--perf-basic-prof`.
//
//   node bench/callgrind-names.mjs DUMP [/tmp/perf-PID.map] [--requests 5000] [--top 40] [--owner]
//
// --owner: the cost of native code (V8 builtins, ICs, runtime, GC triggered
// by allocation, libc, node C++) is handed up the call graph to the nearest
// JS function, in proportion to each caller's inclusive cost of calling it
// (callgrind keeps only caller→callee edges, so this is an estimate): "what
// running this JS function costs", summed by module. Native code no JS
// function called (the event loop, GC threads) stays native.
//
// The map defaults to /tmp/perf-<pid>.map, the pid read from the dump's name
// (cg.<target>.<pid>.<n>: under valgrind node keeps valgrind's pid).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: { requests: { type: 'string', default: '5000' }, top: { type: 'string', default: '40' }, owner: { type: 'boolean', default: false } },
});
const [dump, mapArg] = positionals;
const pid = /\.(\d+)\.\d+$/.exec(basename(dump))?.[1];
const mapFile = mapArg ?? `/tmp/perf-${pid}.map`;
const REQUESTS = Number(opts.requests);

// start size name, in creation order; a later entry at the same address wins.
const entries = [];
for (const line of readFileSync(mapFile, 'utf8').split('\n')) {
  const m = /^([0-9a-f]+) ([0-9a-f]+) (.*)$/.exec(line);
  if (m) entries.push({ start: parseInt(m[1], 16), end: parseInt(m[1], 16) + parseInt(m[2], 16), name: m[3] });
}
const byStart = new Map();
for (const e of entries) byStart.set(e.start, e);
const sorted = [...byStart.values()].sort((a, b) => a.start - b.start);

function lookup(addr) {
  const exact = byStart.get(addr);
  if (exact) return exact.name;
  let lo = 0;
  let hi = sorted.length - 1;
  let found;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid].start <= addr) {
      found = sorted[mid];
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found && addr < found.end ? found.name : undefined;
}

const out = spawnSync('callgrind_annotate', ['--threshold=100', dump], { encoding: 'utf8', maxBuffer: 256 << 20 }).stdout;
const total = Number(/^([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS/m.exec(out)[1].replaceAll(',', ''));
const fns = new Map();
for (const line of out.split('\n')) {
  const m = /^\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)$/.exec(line);
  if (!m || m[2].startsWith('PROGRAM TOTALS')) continue;
  const ir = Number(m[1].replaceAll(',', ''));
  let name = m[2];
  const jit = /^\?\?\?:0x([0-9a-f]+) \[\?\?\?\]$/.exec(name);
  if (jit) name = lookup(parseInt(jit[1], 16)) ?? `unnamed JIT ${name}`;
  else
    name = name
      .replace(/^\?\?\?:/, '')
      .replace(/ \[\/usr\/bin\/node\]$/, '')
      .replaceAll('(anonymous namespace)', '{anon}')
      .replace(/\((?:[^()]|\([^()]*\))*\)( const)?('\d+)?$/, '()$2');
  fns.set(name, (fns.get(name) ?? 0) + ir);
}

function group(name) {
  if (/^node::|^uv_|^uv__/.test(name)) return 'node/libuv C++';
  if (/undici\//.test(name)) return 'undici JS';
  if (/wasm/i.test(name)) return 'wasm (undici llhttp)';
  if (/node:_http_|node:http\b/.test(name)) return 'node:http JS';
  if (/node:internal\/streams|node:stream/.test(name)) return 'node streams JS';
  if (/node:net|node:internal\/stream_base|node:internal\/net/.test(name)) return 'node:net JS';
  if (/node:internal\/timers|node:timers/.test(name)) return 'node timers JS';
  if (/node:events|node:internal\/event/.test(name)) return 'node events JS';
  if (/node:(?!:)/.test(name)) return 'other node JS';
  if (/bench\/peers\/|\/dist\/|\/plugins\//.test(name)) return 'the proxy’s own JS';
  if (/^llhttp/.test(name)) return 'llhttp (C, node:http)';
  if (/^(JS|LazyCompile|Function):/.test(name)) return 'other JS';
  if (/^Builtins_|^Builtin:|BytecodeHandler/.test(name)) return 'V8 builtins (called from JS)';
  if (/Scaveng|Heap|GC|Mark|Sweep|Evacuat|Remembered|Slot/.test(name)) return 'V8 GC';
  if (/^v8::|^Runtime_|^v8_/.test(name)) return 'V8 runtime (C++)';
  if (/malloc|free|mem(cpy|set|move|cmp)|^__/.test(name)) return 'libc';
  if (/^unnamed JIT/.test(name)) return 'unnamed JIT';
  return 'other native';
}

const groups = new Map();
for (const [name, ir] of fns) groups.set(group(name), (groups.get(group(name)) ?? 0) + ir);
const per = (ir) => Math.round(ir / REQUESTS).toLocaleString('en-US').padStart(8);
const pct = (ir) => `${((ir / total) * 100).toFixed(1).padStart(5)}%`;
console.log(`${dump}: ${per(total)} instructions/request (${REQUESTS} requests)\n\nby origin (self instructions/request):`);
for (const [g, ir] of [...groups].sort((a, b) => b[1] - a[1])) console.log(`${per(ir)} ${pct(ir)}  ${g}`);
console.log(`\ntop ${opts.top} functions (self):`);
for (const [name, ir] of [...fns].sort((a, b) => b[1] - a[1]).slice(0, Number(opts.top))) console.log(`${per(ir)} ${pct(ir)}  ${name.slice(0, 150)}`);

if (opts.owner) {
  const text = readFileSync(dump, 'utf8');
  const names = new Map(); // id → name
  const self = new Map(); // name → self Ir
  const edges = new Map(); // callee → Map(caller → inclusive Ir)
  let fn;
  let callee;
  let pendingCall = false;
  const named = (spec) => {
    const m = /^\((\d+)\)(?: (.*))?$/.exec(spec);
    if (!m) return spec;
    if (m[2] !== undefined) names.set(m[1], m[2]);
    return names.get(m[1]);
  };
  for (const line of text.split('\n')) {
    if (line.startsWith('fn=')) fn = named(line.slice(3));
    else if (line.startsWith('cfn=')) callee = named(line.slice(4));
    else if (line.startsWith('calls=')) pendingCall = true;
    else if (/^[+\-*\d]/.test(line)) {
      const parts = line.split(' ');
      const ir = Number(parts[1] ?? 0);
      if (pendingCall) {
        pendingCall = false;
        if (callee !== fn) {
          let m = edges.get(callee);
          if (!m) edges.set(callee, (m = new Map()));
          m.set(fn, (m.get(fn) ?? 0) + ir);
        }
      } else self.set(fn, (self.get(fn) ?? 0) + ir);
    }
  }
  const display = (name) => {
    const jit = /^0x([0-9a-f]+)$/.exec(name);
    return jit ? lookup(parseInt(jit[1], 16)) ?? `unnamed JIT ${name}` : name;
  };
  const isJs = (name) => /^JS:/.test(display(name));
  // Push native mass up to callers until it rests on JS functions (or on natives nothing calls).
  const owned = new Map();
  let mass = new Map([...self].filter(([, v]) => v > 0));
  for (let round = 0; round < 60 && mass.size > 0; round++) {
    const next = new Map();
    for (const [name, ir] of mass) {
      const callers = edges.get(name);
      if (isJs(name) || callers === undefined || callers.size === 0) {
        owned.set(name, (owned.get(name) ?? 0) + ir);
        continue;
      }
      let sum = 0;
      for (const w of callers.values()) sum += w;
      if (sum === 0) {
        owned.set(name, (owned.get(name) ?? 0) + ir);
        continue;
      }
      for (const [caller, w] of callers) next.set(caller, (next.get(caller) ?? 0) + (ir * w) / sum);
    }
    mass = next;
  }
  for (const [name, ir] of mass) owned.set(name, (owned.get(name) ?? 0) + ir);
  const total2 = [...owned.values()].reduce((a, b) => a + b, 0);
  const ownerGroup = (name) => {
    const d = display(name);
    if (isJs(name)) return group(d);
    return `native, no JS caller: ${group(d)}`;
  };
  const g2 = new Map();
  for (const [name, ir] of owned) g2.set(ownerGroup(name), (g2.get(ownerGroup(name)) ?? 0) + ir);
  console.log(`\nowner view (native cost handed to the nearest JS caller), ${per(total2)} instructions/request:`);
  for (const [g, ir] of [...g2].sort((a, b) => b[1] - a[1])) console.log(`${per(ir)} ${((ir / total2) * 100).toFixed(1).padStart(5)}%  ${g}`);
  console.log(`\ntop ${opts.top} owners:`);
  for (const [name, ir] of [...owned].sort((a, b) => b[1] - a[1]).slice(0, Number(opts.top)))
    console.log(`${per(ir)} ${((ir / total2) * 100).toFixed(1).padStart(5)}%  ${display(name).slice(0, 150)}`);
}
