/**
 * The dashboard the admin listener serves at GET /: one HTML page, its
 * stylesheet and script, and an icon — plain files kept as strings so they
 * ship inside the compiled package with no build step and no CDN.
 *
 * The script polls /status every second and draws pools and backends; the
 * request rate is computed in the browser from the growth of each backend's
 * request total between two polls. Everything is built with DOM calls and
 * textContent, never innerHTML, so a backend URL cannot inject markup.
 *
 * (The script avoids backticks and dollar-brace sequences: it lives inside a
 * String.raw template here.)
 */

export const DASHBOARD_HTML = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Switchyard</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/dashboard.css">
<script src="/dashboard.js" defer></script>
</head>
<body>
<header class="topbar">
  <div class="brand">
    <img src="/favicon.svg" alt="" width="26" height="26">
    <span class="brand-name">Switchyard</span>
  </div>
  <div class="meta" id="meta">connecting…</div>
  <div class="live" id="live" data-live="pending"><span class="live-dot"></span><span id="live-text">connecting</span></div>
</header>
<main>
  <section class="banner" id="banner" role="alert"><div class="banner-title" id="banner-title"></div><pre id="banner-text"></pre></section>
  <section class="tiles" aria-label="Summary">
    <div class="tile"><div class="tile-label">In rotation</div><div class="tile-value" id="t-up">–</div><div class="tile-sub" id="t-up-sub">&nbsp;</div></div>
    <div class="tile" id="tile-down"><div class="tile-label">Down</div><div class="tile-value" id="t-down">–</div><div class="tile-sub" id="t-down-sub">&nbsp;</div></div>
    <div class="tile tile-wide"><div class="tile-label">Requests / s</div><div class="tile-value" id="t-rate">–</div><div class="tile-spark" id="t-spark"></div></div>
    <div class="tile"><div class="tile-label">Active connections</div><div class="tile-value" id="t-active">–</div><div class="tile-sub" id="t-active-sub">&nbsp;</div></div>
    <div class="tile"><div class="tile-label">Generation</div><div class="tile-value" id="t-gen">–</div><div class="tile-sub" id="t-gen-sub">&nbsp;</div></div>
  </section>
  <div id="pools" class="pools"></div>
</main>
<footer class="footer">Refreshes every second from <a href="/status">/status</a> · Prometheus metrics at <a href="/metrics">/metrics</a></footer>
</body>
</html>
`;

export const DASHBOARD_CSS = String.raw`
:root {
  --bg: #f4f6f9;
  --panel: #ffffff;
  --ink: #0f172a;
  --muted: #64748b;
  --faint: #94a3b8;
  --line: #e2e8f0;
  --head: #0b1220;
  --head-ink: #e2e8f0;
  --accent: #3b82f6;
  --up: #16a34a;
  --up-bg: #dcfce7;
  --down: #dc2626;
  --down-bg: #fee2e2;
  --down-row: #fff5f5;
  --unknown: #b45309;
  --unknown-bg: #fef3c7;
  --shadow: 0 1px 2px rgba(15, 23, 42, .06), 0 1px 8px rgba(15, 23, 42, .04);
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0b1120; --panel: #111a2e; --ink: #e2e8f0; --muted: #94a3b8; --faint: #64748b; --line: #1f2a44;
    --head: #060a14; --up-bg: #052e16; --down-bg: #450a0a; --down-row: #1f0d12; --unknown-bg: #3a2606;
    --up: #22c55e; --down: #f87171; --unknown: #fbbf24; --shadow: none;
  }
}
* { box-sizing: border-box; }
html, body { margin: 0; }
body {
  background: var(--bg); color: var(--ink);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
}
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
.mono, .url { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }

.topbar {
  display: flex; align-items: center; gap: 24px; padding: 12px 28px;
  background: var(--head); color: var(--head-ink); position: sticky; top: 0; z-index: 2;
}
.brand { display: flex; align-items: center; gap: 10px; font-weight: 650; font-size: 17px; letter-spacing: .2px; }
.meta { color: #94a3b8; font-size: 13px; flex: 1; }
.meta b { color: var(--head-ink); font-weight: 600; }
.live { display: flex; align-items: center; gap: 8px; font-size: 12.5px; color: #94a3b8; }
.live-dot { width: 9px; height: 9px; border-radius: 50%; background: #64748b; }
.live[data-live="ok"] .live-dot { background: #22c55e; box-shadow: 0 0 0 0 rgba(34, 197, 94, .6); animation: pulse 2s infinite; }
.live[data-live="error"] { color: #fca5a5; }
.live[data-live="error"] .live-dot { background: #ef4444; }
@keyframes pulse { 0% { box-shadow: 0 0 0 0 rgba(34, 197, 94, .55); } 70% { box-shadow: 0 0 0 7px rgba(34, 197, 94, 0); } 100% { box-shadow: 0 0 0 0 rgba(34, 197, 94, 0); } }

main { padding: 22px 28px 8px; max-width: 1500px; margin: 0 auto; }

.tiles { display: grid; grid-template-columns: repeat(6, minmax(0, 1fr)); gap: 14px; margin-bottom: 22px; }
.tile { background: var(--panel); border: 1px solid var(--line); border-radius: 12px; padding: 14px 16px; box-shadow: var(--shadow); min-width: 0; }
.tile-wide { grid-column: span 2; display: grid; grid-template-columns: auto 1fr; grid-template-rows: auto auto; column-gap: 16px; }
.tile-wide .tile-label { grid-column: 1; }
.tile-wide .tile-value { grid-column: 1; }
.tile-spark { grid-column: 2; grid-row: 1 / span 2; align-self: center; height: 46px; }
.tile-spark svg { width: 100%; height: 46px; display: block; }
.tile-label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .06em; font-weight: 600; }
.tile-value { font-size: 28px; font-weight: 650; font-variant-numeric: tabular-nums; margin-top: 2px; }
.tile-sub { color: var(--muted); font-size: 12.5px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
#tile-down[data-alert="yes"] { border-color: var(--down); background: var(--down-bg); }
#tile-down[data-alert="yes"] .tile-value { color: var(--down); }

.pools { display: flex; flex-direction: column; gap: 18px; }
.pool { background: var(--panel); border: 1px solid var(--line); border-radius: 12px; box-shadow: var(--shadow); overflow: hidden; }
.pool-head { display: flex; align-items: center; flex-wrap: wrap; gap: 10px; padding: 14px 18px; border-bottom: 1px solid var(--line); }
.pool-name { font-size: 16px; font-weight: 650; margin: 0; }
.chip { font-size: 12px; color: var(--muted); border: 1px solid var(--line); border-radius: 999px; padding: 2px 10px; white-space: nowrap; }
.pool-count { margin-left: auto; font-size: 13px; font-weight: 600; }
.pool-count[data-health="ok"] { color: var(--up); }
.pool-count[data-health="degraded"] { color: var(--unknown); }
.pool-count[data-health="out"] { color: var(--down); }

table { width: 100%; border-collapse: collapse; table-layout: fixed; }
/* The same column widths in every pool, so their tables line up. */
th:nth-child(1) { width: 25%; }
th:nth-child(2) { width: 124px; }
th:nth-child(3) { width: 20%; }
th:nth-child(4), th:nth-child(5), th:nth-child(9) { width: 7.5%; }
th:nth-child(6) { width: 12%; }
th:nth-child(7) { width: 8%; }
th:nth-child(8) { width: 6.5%; }
td { overflow: hidden; text-overflow: ellipsis; }
td:nth-child(2) { overflow: visible; }
th { text-align: left; font-size: 11.5px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); font-weight: 600; padding: 9px 14px; border-bottom: 1px solid var(--line); white-space: nowrap; }
th.num { text-align: right; }
td { padding: 10px 14px; border-bottom: 1px solid var(--line); vertical-align: middle; }
tr:last-child td { border-bottom: 0; }
tr.backend { transition: background-color .4s; }
tr.backend:hover { background: rgba(100, 116, 139, .06); }
tr.backend[data-state="down"] { background: var(--down-row); box-shadow: inset 3px 0 0 var(--down); }
.url { font-size: 13px; }
.weight { color: var(--faint); font-size: 12px; margin-left: 6px; }
.pill { display: inline-flex; align-items: center; gap: 6px; font-size: 12px; font-weight: 650; letter-spacing: .04em; padding: 3px 10px 3px 8px; border-radius: 999px; text-transform: uppercase; }
.pill::before { content: ""; width: 8px; height: 8px; border-radius: 50%; background: currentColor; }
.pill[data-state="up"] { color: var(--up); background: var(--up-bg); }
.pill[data-state="down"] { color: var(--down); background: var(--down-bg); }
.pill[data-state="unknown"] { color: var(--unknown); background: var(--unknown-bg); }
.reason { color: var(--muted); font-size: 12.5px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
tr.backend[data-state="down"] .reason { color: var(--down); }
.since { color: var(--faint); font-size: 12px; }
.spark svg { width: 100%; max-width: 160px; height: 28px; display: block; }
.spark-line { fill: none; stroke: var(--accent); stroke-width: 1.6; stroke-linejoin: round; stroke-linecap: round; }
.spark-fill { fill: var(--accent); opacity: .12; stroke: none; }
.spark-base { stroke: var(--line); stroke-width: 1; vector-effect: non-scaling-stroke; }
.tile-spark .spark-line { stroke-width: 2; vector-effect: non-scaling-stroke; }
.spark .spark-line { vector-effect: non-scaling-stroke; }

.banner { display: none; margin-bottom: 18px; border: 1px solid var(--down); background: var(--down-bg); color: var(--ink); border-radius: 12px; padding: 12px 16px; }
.banner[data-show="yes"] { display: block; }
.banner-title { font-weight: 650; color: var(--down); margin-bottom: 4px; }
.banner pre { margin: 0; white-space: pre-wrap; font: 12.5px/1.5 ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; }
.errors[data-nonzero="yes"] { color: var(--down); font-weight: 600; }
.dim { color: var(--faint); }
.empty { padding: 40px; text-align: center; color: var(--muted); }

.footer { color: var(--faint); font-size: 12.5px; text-align: center; padding: 18px 0 26px; }

@media (max-width: 1100px) {
  .tiles { grid-template-columns: repeat(3, minmax(0, 1fr)); }
  th:nth-child(6), th:nth-child(9), .col-spark, .col-probe { display: none; }
}
`;

export const DASHBOARD_JS = String.raw`'use strict';
(function () {
  var POLL_MS = 1000;
  var HISTORY = 60;
  var SVG_NS = 'http://www.w3.org/2000/svg';

  var poolsEl = document.getElementById('pools');
  var pools = new Map();
  /** Per backend URL: last request total seen, when, and the recent rates. */
  var rates = new Map();
  var totalHistory = [];
  var lastPollAt = 0;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  function fmtInt(n) {
    return n.toLocaleString('en-US');
  }

  function fmtRate(r) {
    if (r >= 100) return Math.round(r).toLocaleString('en-US');
    if (r >= 10) return r.toFixed(1);
    if (r > 0) return r.toFixed(2);
    return '0';
  }

  function fmtAgo(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + 's';
    var m = Math.floor(s / 60);
    if (m < 60) return m + 'm ' + (s % 60) + 's';
    var h = Math.floor(m / 60);
    if (h < 48) return h + 'h ' + (m % 60) + 'm';
    return Math.floor(h / 24) + 'd ' + (h % 24) + 'h';
  }

  function fmtMs(ms) {
    if (ms === null || ms === undefined) return '–';
    return ms < 10 ? ms.toFixed(1) + ' ms' : Math.round(ms) + ' ms';
  }

  function fmtDuration(ms) {
    return ms >= 1000 && ms % 100 === 0 ? ms / 1000 + 's' : ms + 'ms';
  }

  function spark(container, values, fixedMax) {
    var w = 140, h = 28;
    var svg = container.firstChild;
    if (!svg) {
      svg = document.createElementNS(SVG_NS, 'svg');
      svg.setAttribute('preserveAspectRatio', 'none');
      var base = document.createElementNS(SVG_NS, 'line');
      base.setAttribute('class', 'spark-base');
      base.setAttribute('x1', '0');
      base.setAttribute('x2', String(w));
      base.setAttribute('y1', String(h - 0.5));
      base.setAttribute('y2', String(h - 0.5));
      svg.appendChild(base);
      var fill = document.createElementNS(SVG_NS, 'path');
      fill.setAttribute('class', 'spark-fill');
      var line = document.createElementNS(SVG_NS, 'polyline');
      line.setAttribute('class', 'spark-line');
      svg.appendChild(fill);
      svg.appendChild(line);
      container.appendChild(svg);
    }
    svg.setAttribute('viewBox', '0 0 ' + w + ' ' + h);
    var max = fixedMax || 0;
    for (var i = 0; i < values.length; i++) if (values[i] > max) max = values[i];
    if (max <= 0) max = 1;
    var step = w / (HISTORY - 1);
    var offset = HISTORY - values.length;
    var points = [];
    for (var j = 0; j < values.length; j++) {
      var x = (offset + j) * step;
      var y = h - 2 - (values[j] / max) * (h - 4);
      points.push(x.toFixed(1) + ',' + y.toFixed(1));
    }
    svg.childNodes[2].setAttribute('points', points.join(' '));
    if (points.length > 1) {
      var first = (offset * step).toFixed(1);
      svg.childNodes[1].setAttribute('d', 'M' + first + ',' + h + ' L' + points.join(' L') + ' L' + w + ',' + h + ' Z');
    } else {
      svg.childNodes[1].setAttribute('d', '');
    }
  }

  function updateRate(url, requests, now) {
    var entry = rates.get(url);
    if (!entry) {
      entry = { requests: requests, at: now, rate: 0, history: [], seen: now };
      rates.set(url, entry);
      return entry;
    }
    if (entry.seen === now) return entry;
    var dt = (now - entry.at) / 1000;
    if (dt > 0) {
      entry.rate = Math.max(0, requests - entry.requests) / dt;
      entry.history.push(entry.rate);
      if (entry.history.length > HISTORY) entry.history.shift();
    }
    entry.requests = requests;
    entry.at = now;
    entry.seen = now;
    return entry;
  }

  function poolView(name) {
    var view = pools.get(name);
    if (view) return view;
    var section = el('section', 'pool');
    section.dataset.pool = name;
    var head = el('div', 'pool-head');
    head.appendChild(el('h2', 'pool-name', name));
    var chips = el('div', 'chips');
    chips.style.display = 'contents';
    head.appendChild(chips);
    var count = el('span', 'pool-count');
    head.appendChild(count);
    section.appendChild(head);
    var table = el('table');
    var thead = el('thead');
    var hr = el('tr');
    var cols = [
      ['Backend', ''], ['State', ''], ['Reason', ''], ['Active', 'num'], ['Req/s', 'num'],
      ['Last 60 s', 'col-spark'], ['Requests', 'num'], ['Errors', 'num'], ['Probe', 'num col-probe'],
    ];
    cols.forEach(function (c) { hr.appendChild(el('th', c[1], c[0])); });
    thead.appendChild(hr);
    table.appendChild(thead);
    var tbody = el('tbody');
    table.appendChild(tbody);
    section.appendChild(table);
    poolsEl.appendChild(section);
    view = { section: section, chips: chips, count: count, tbody: tbody, rows: new Map() };
    pools.set(name, view);
    return view;
  }

  function rowView(pool, url) {
    var row = pool.rows.get(url);
    if (row) return row;
    var tr = el('tr', 'backend');
    tr.dataset.url = url;
    var cUrl = el('td');
    var urlText = el('span', 'url', url);
    var weight = el('span', 'weight');
    cUrl.appendChild(urlText);
    cUrl.appendChild(weight);
    var cState = el('td');
    var pill = el('span', 'pill');
    cState.appendChild(pill);
    var cReason = el('td');
    var reason = el('div', 'reason');
    var since = el('div', 'since');
    cReason.appendChild(reason);
    cReason.appendChild(since);
    var cActive = el('td', 'num');
    var cRate = el('td', 'num');
    var cSpark = el('td', 'spark col-spark');
    var cRequests = el('td', 'num');
    var cErrors = el('td', 'num errors');
    var cProbe = el('td', 'num col-probe');
    [cUrl, cState, cReason, cActive, cRate, cSpark, cRequests, cErrors, cProbe].forEach(function (td) { tr.appendChild(td); });
    pool.tbody.appendChild(tr);
    row = { tr: tr, weight: weight, pill: pill, reason: reason, since: since, active: cActive, rate: cRate, spark: cSpark, requests: cRequests, errors: cErrors, probe: cProbe };
    pool.rows.set(url, row);
    return row;
  }

  function renderPool(name, pool, now) {
    var view = poolView(name);
    var chips = [pool.strategy];
    if (pool.health) {
      chips.push(pool.health.checker + ' check every ' + fmtDuration(pool.health.interval_ms) + ', down after ' + pool.health.unhealthy_after + ', up after ' + pool.health.healthy_after);
    } else {
      chips.push('passive checks only');
    }
    var chipText = chips.join('|');
    if (view.chips.dataset.text !== chipText) {
      view.chips.dataset.text = chipText;
      view.chips.textContent = '';
      chips.forEach(function (c) { view.chips.appendChild(el('span', 'chip', c)); });
    }
    var inRotation = 0;
    var seen = new Set();
    pool.backends.forEach(function (b, index) {
      seen.add(b.url);
      var row = rowView(view, b.url);
      if (view.tbody.children[index] !== row.tr) view.tbody.insertBefore(row.tr, view.tbody.children[index] || null);
      if (b.state !== 'down') inRotation++;
      row.tr.dataset.state = b.state;
      row.pill.dataset.state = b.state;
      setText(row.pill, b.state);
      setText(row.weight, b.weight !== 1 ? 'weight ' + b.weight : '');
      setText(row.reason, b.reason);
      row.reason.title = b.reason;
      setText(row.since, 'since ' + fmtAgo(now - Date.parse(b.changed_at)) + ' ago');
      setText(row.active, fmtInt(b.active));
      var rate = updateRate(b.url, b.requests, now);
      setText(row.rate, fmtRate(rate.rate));
      spark(row.spark, rate.history);
      setText(row.requests, fmtInt(b.requests));
      var errors = b.failures + b.responses['5xx'];
      setText(row.errors, fmtInt(errors));
      row.errors.dataset.nonzero = errors > 0 ? 'yes' : 'no';
      row.errors.title = b.failures + ' failed at the backend, ' + b.responses['5xx'] + ' answered 5xx';
      setText(row.probe, fmtMs(b.last_probe_ms));
    });
    view.rows.forEach(function (row, url) {
      if (!seen.has(url)) { row.tr.remove(); view.rows.delete(url); }
    });
    var total = pool.backends.length;
    setText(view.count, inRotation + ' of ' + total + ' in rotation');
    view.count.dataset.health = inRotation === total ? 'ok' : inRotation === 0 ? 'out' : 'degraded';
    return { inRotation: inRotation, total: total };
  }

  function render(status, now) {
    var names = Object.keys(status.pools);
    var up = 0, down = 0, total = 0, active = 0, rate = 0, unknown = 0;
    var counted = new Set();
    names.forEach(function (name, index) {
      var view = poolView(name);
      if (poolsEl.children[index] !== view.section) poolsEl.insertBefore(view.section, poolsEl.children[index] || null);
      renderPool(name, status.pools[name], now);
      status.pools[name].backends.forEach(function (b) {
        if (counted.has(b.url)) return;
        counted.add(b.url);
        total++;
        if (b.state === 'down') down++; else up++;
        if (b.state === 'unknown') unknown++;
        active += b.active;
        rate += rates.get(b.url).rate;
      });
    });
    pools.forEach(function (view, name) {
      if (names.indexOf(name) === -1) { view.section.remove(); pools.delete(name); }
    });
    rates.forEach(function (_entry, url) { if (!counted.has(url)) rates.delete(url); });

    totalHistory.push(rate);
    if (totalHistory.length > HISTORY) totalHistory.shift();

    setText(document.getElementById('t-up'), up + ' / ' + total);
    setText(document.getElementById('t-up-sub'), unknown > 0 ? unknown + ' not checked yet' : 'backends serving');
    setText(document.getElementById('t-down'), String(down));
    setText(document.getElementById('t-down-sub'), down > 0 ? 'out of rotation' : 'all backends serving');
    document.getElementById('tile-down').dataset.alert = down > 0 ? 'yes' : 'no';
    setText(document.getElementById('t-rate'), fmtRate(rate));
    spark(document.getElementById('t-spark'), totalHistory);
    setText(document.getElementById('t-active'), fmtInt(active));
    setText(document.getElementById('t-active-sub'), 'requests in flight');
    setText(document.getElementById('t-gen'), '#' + status.generation);
    setText(document.getElementById('t-gen-sub'), status.reloads.applied + ' reloads, ' + status.reloads.refused + ' refused');

    renderBanner(status);

    var meta = document.getElementById('meta');
    meta.textContent = '';
    var loaded = new Date(status.loaded_at);
    var facts = [['pools', String(names.length)]];
    // With workers > 1: how many worker processes serve now.
    if (status.workers) facts.push(['workers', status.workers.filter(function (w) { return w.state === 'serving'; }).length + ' / ' + status.workers.length]);
    facts.push(['config loaded', loaded.toLocaleTimeString() + ' (' + fmtAgo(now - loaded.getTime()) + ' ago)'], ['up', fmtAgo(status.uptime_s * 1000)]);
    facts.forEach(function (pair, i) {
      if (i > 0) meta.appendChild(document.createTextNode('  ·  '));
      meta.appendChild(document.createTextNode(pair[0] + ' '));
      meta.appendChild(el('b', '', pair[1]));
    });
    if (names.length === 0 && !document.querySelector('.empty')) poolsEl.appendChild(el('div', 'empty', 'No pools configured.'));
  }

  /** The last reload was refused and nothing was applied since: say so, with the problems. */
  function renderBanner(status) {
    var banner = document.getElementById('banner');
    var refused = status.reloads.last_refused;
    var applied = status.reloads.last_applied;
    var show = refused && (!applied || Date.parse(refused.at) > Date.parse(applied.at));
    banner.dataset.show = show ? 'yes' : 'no';
    if (!show) return;
    setText(document.getElementById('banner-title'),
      'The configuration saved at ' + new Date(refused.at).toLocaleTimeString() + ' was refused; still serving generation ' + status.generation + ':');
    setText(document.getElementById('banner-text'), refused.problems.join('\n'));
  }

  function setLive(ok, text) {
    var live = document.getElementById('live');
    live.dataset.live = ok ? 'ok' : 'error';
    setText(document.getElementById('live-text'), text);
  }

  function poll() {
    var started = Date.now();
    fetch('/status', { cache: 'no-store', headers: { accept: 'application/json' } })
      .then(function (res) {
        if (!res.ok) throw new Error('/status answered ' + res.status);
        return res.json();
      })
      .then(function (status) {
        lastPollAt = Date.now();
        render(status, lastPollAt);
        setLive(true, 'live');
      })
      .catch(function (err) {
        setLive(false, 'admin API unreachable' + (lastPollAt ? ' — last update ' + fmtAgo(Date.now() - lastPollAt) + ' ago' : '') + ', retrying');
        document.body.dataset.error = String(err && err.message || err);
      })
      .then(function () {
        setTimeout(poll, Math.max(100, POLL_MS - (Date.now() - started)));
      });
  }

  poll();
})();
`;

export const FAVICON_SVG = String.raw`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">
<rect width="32" height="32" rx="7" fill="#1d4ed8"/>
<path d="M6 9h8c3 0 4 2 5 4l2 3c1 2 2 4 5 4" fill="none" stroke="#fff" stroke-width="2.4" stroke-linecap="round"/>
<path d="M6 16h20M6 23h8c3 0 4-2 5-4" fill="none" stroke="#93c5fd" stroke-width="2.4" stroke-linecap="round"/>
<circle cx="26" cy="9" r="2.2" fill="#22c55e"/><circle cx="26" cy="16" r="2.2" fill="#22c55e"/><circle cx="26" cy="23" r="2.2" fill="#22c55e"/>
</svg>
`;
