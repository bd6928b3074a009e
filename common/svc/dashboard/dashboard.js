// dashboard.js -- the live dashboard: one EventSource and one card per service,
// one panel per breaker of that service.
//
// Each service's /events.stream sends unnamed messages (HystrixCommand objects,
// one per breaker per interval), "service" events (name, uptime, its breakers
// and their states) and "breaker" events (open, close, failure, ...). The page
// keeps the last HISTORY_MS of samples per breaker and redraws its canvas
// chart on every sample. A card takes the colour of its most troubled breaker.
'use strict';

const HISTORY_MS = 5 * 60 * 1000;
const FEED_MAX = 30;
const PCT_KEYS = ['50', '90', '99', '99.5', '100'];

// Reads ?services=name@url,name@url; defaults to this host's ports 3000..3002.
function serviceList() {
  const param = new URLSearchParams(window.location.search).get('services');
  if (param) {
    return param.split(',').filter(Boolean).map((item) => {
      const at = item.indexOf('@');
      const name = at > 0 ? item.slice(0, at) : item;
      const base = at > 0 ? item.slice(at + 1) : item;
      return { name, base: base.replace(/\/+$/, '') };
    });
  }
  const host = window.location.hostname || '127.0.0.1';
  const proto = window.location.protocol === 'https:' ? 'https:' : 'http:';
  return ['order', 'payment', 'shipment'].map((name, i) =>
    ({ name, base: `${proto}//${host}:${3000 + i}` }));
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function figure(parent, key) {
  const f = el('div', 'figure');
  const v = el('div', 'v', '-');
  f.append(v, el('div', 'k', key));
  parent.append(f);
  return v;
}

// Builds a service's card: a header, a panel per breaker (added as the
// service reports them) and the feed of its breakers' latest events.
function buildCard(svc) {
  const card = el('section', 'card state-offline');
  card.dataset.service = svc.name;
  card.dataset.state = 'offline';
  card.dataset.connected = 'false';
  const h2 = el('h2');
  const badge = el('span', 'badge state-offline', 'connecting');
  h2.append(el('span', 'name', svc.name), badge);
  const info = el('div', 'breaker', svc.base);
  const panels = el('div', 'panels');
  const feed = el('ul', 'feed');
  card.append(h2, info, panels, feed);
  document.getElementById('cards').append(card);
  return { card, badge, info, panels, feed };
}

// Builds the panel of one breaker: state, figures, percentiles, chart.
function buildPanel(svc, name) {
  const panel = el('div', 'panel state-closed');
  panel.dataset.breaker = name;
  panel.dataset.state = 'closed';
  const h3 = el('h3');
  const badge = el('span', 'badge state-closed', 'closed');
  h3.append(el('span', 'bname', name), badge);
  const settings = el('div', 'breaker');
  const figs = el('div', 'figures');
  const p = {
    name, panel, badge, settings, samples: [],
    errPct: figure(figs, 'error % (window)'),
    rate: figure(figs, 'requests/s (window)'),
    mean: figure(figs, 'mean latency ms'),
  };
  const table = el('table', 'pct');
  const head = el('tr');
  const row = el('tr');
  p.pct = {};
  for (const k of PCT_KEYS) {
    head.append(el('th', null, `p${k}`));
    p.pct[k] = el('td', null, '-');
    row.append(p.pct[k]);
  }
  table.append(head, row);
  p.canvas = el('canvas', 'chart');
  panel.append(h3, settings, figs, table, p.canvas);
  svc.ui.panels.append(panel);
  svc.panels.set(name, p);
  return p;
}

function panelFor(svc, name) {
  return svc.panels.get(name) || buildPanel(svc, name);
}

function setBadge(node, badge, state, label) {
  node.className = `${node.classList[0]} state-${state}`;
  node.dataset.state = state;
  badge.className = `badge state-${state}`;
  badge.textContent = label || state;
}

// The card shows its most troubled breaker: open before half-open before the rest.
const SEVERITY = { open: 5, 'forced-open': 4, 'half-open': 3, 'forced-closed': 2, disabled: 2,
                   shutdown: 2, closed: 1 };

function setPanelState(svc, p, state) {
  setBadge(p.panel, p.badge, state);
  refreshCard(svc);
}

function refreshCard(svc) {
  if (svc.ui.card.dataset.connected !== 'true') return;
  let worst = null;
  for (const p of svc.panels.values()) {
    const st = p.panel.dataset.state;
    if (!worst || (SEVERITY[st] || 0) > (SEVERITY[worst] || 0)) worst = st;
  }
  if (worst) setBadge(svc.ui.card, svc.ui.badge, worst);
  else setBadge(svc.ui.card, svc.ui.badge, 'none', 'no breaker');
}

function fmt(n, digits) {
  return Number.isFinite(n) ? n.toFixed(digits) : '-';
}

function onCommand(svc, cmd) {
  const p = panelFor(svc, cmd.name);
  const windowS = (cmd.propertyValue_metricsRollingStatisticalWindowInMilliseconds || 10000) / 1000;
  const rate = cmd.requestCount / windowS;
  const timeout = cmd.propertyValue_executionTimeoutInMilliseconds;
  p.settings.textContent = `threshold ${cmd.propertyValue_circuitBreakerErrorThresholdPercentage}% · ` +
    `timeout ${timeout ? `${timeout} ms` : 'none'} · reset ${cmd.propertyValue_circuitBreakerSleepWindowInMilliseconds} ms`;
  const state = cmd.state || (cmd.isCircuitBreakerOpen ? 'open' : 'closed');
  setPanelState(svc, p, state);
  p.errPct.textContent = fmt(cmd.errorPercentage, 0);
  p.rate.textContent = fmt(rate, 1);
  p.mean.textContent = fmt(cmd.latencyExecute_mean, 0);
  for (const k of PCT_KEYS) p.pct[k].textContent = fmt(cmd.latencyExecute[k], 0);
  p.samples.push({ t: Date.now(), rate, err: cmd.errorPercentage, state });
  trimSamples(p);
  drawChart(p);
}

function onService(svc, info) {
  for (const b of info.breakers || []) {
    const p = panelFor(svc, b.name);
    if (p.panel.dataset.state !== b.state) setPanelState(svc, p, b.state);
  }
  svc.ui.info.textContent = `${svc.panels.size} breaker(s) · up ${fmt(info.uptime_s, 0)} s`;
  refreshCard(svc);
}

function onBreakerEvent(svc, ev) {
  const li = el('li', `ev-${ev.event}`);
  const time = new Date(ev.time).toLocaleTimeString();
  li.append(el('span', 't', time));
  const target = ev.breaker.includes('->') ? ev.breaker.slice(ev.breaker.indexOf('->') + 2) : ev.breaker;
  let text = `→${target} ${ev.event} (now ${ev.state})`;
  if (ev.latencyMs !== undefined) text += ` ${fmt(ev.latencyMs, 0)} ms`;
  if (ev.errorPercentage !== undefined) text += ` err ${fmt(ev.errorPercentage, 0)}%`;
  if (ev.error) text += ` ${ev.error}`;
  li.append(document.createTextNode(text));
  svc.ui.feed.prepend(li);
  while (svc.ui.feed.children.length > FEED_MAX) svc.ui.feed.lastChild.remove();
  if (ev.breaker && ['open', 'halfOpen', 'close'].includes(ev.event))
    setPanelState(svc, panelFor(svc, ev.breaker), ev.state);
}

function trimSamples(p) {
  const cutoff = Date.now() - HISTORY_MS;
  while (p.samples.length && p.samples[0].t < cutoff) p.samples.shift();
}

const STATE_COLOURS = { open: '#e5484d', 'forced-open': '#9b1c1f', 'half-open': '#e6a23c' };

// Draws requests/s (blue, left scale) and error % (red, 0..100) over HISTORY_MS;
// periods when the circuit was not closed are shaded in the state's colour.
function drawChart(p) {
  const c = p.canvas;
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(c.clientWidth * dpr));
  const h = Math.max(1, Math.round(c.clientHeight * dpr));
  if (c.width !== w || c.height !== h) { c.width = w; c.height = h; }
  const g = c.getContext('2d');
  g.clearRect(0, 0, w, h);
  const now = Date.now();
  const x = (t) => w - ((now - t) / HISTORY_MS) * w;
  const pad = 4 * dpr;
  const s = p.samples;
  for (let i = 0; i < s.length; i++) {
    const colour = STATE_COLOURS[s[i].state];
    if (!colour) continue;
    const x0 = x(s[i].t);
    const x1 = i + 1 < s.length ? x(s[i + 1].t) : w;
    g.fillStyle = colour + '33';
    g.fillRect(x0, 0, Math.max(1, x1 - x0), h);
  }
  g.strokeStyle = '#2b3540';
  g.lineWidth = 1;
  for (let m = 1; m < HISTORY_MS / 60000; m++) {
    const gx = x(now - m * 60000);
    g.beginPath(); g.moveTo(gx, 0); g.lineTo(gx, h); g.stroke();
  }
  const maxRate = Math.max(1, ...s.map((p) => p.rate));
  line(g, s, x, (p) => h - pad - (p.rate / maxRate) * (h - 2 * pad), '#4ea1ff', dpr);
  line(g, s, x, (p) => h - pad - (p.err / 100) * (h - 2 * pad), '#e5484d', dpr);
  g.fillStyle = '#8a96a3';
  g.font = `${10 * dpr}px system-ui, sans-serif`;
  g.fillText(`max ${maxRate.toFixed(1)} req/s`, 4 * dpr, 12 * dpr);
}

function line(g, samples, x, y, colour, dpr) {
  if (samples.length < 2) return;
  g.strokeStyle = colour;
  g.lineWidth = 1.5 * dpr;
  g.beginPath();
  samples.forEach((p, i) => (i ? g.lineTo(x(p.t), y(p)) : g.moveTo(x(p.t), y(p))));
  g.stroke();
}

function parse(svc, text) {
  try {
    return JSON.parse(text);
  } catch (e) {
    console.warn(`${svc.name}: unreadable stream message`, e);
    return null;
  }
}

function connect(svc) {
  const es = new EventSource(`${svc.base}/events.stream`);
  es.onopen = () => { svc.ui.card.dataset.connected = 'true'; refreshCard(svc); };
  es.onerror = () => {
    svc.ui.card.dataset.connected = 'false';
    setBadge(svc.ui.card, svc.ui.badge, 'offline', 'unreachable');
  };
  es.onmessage = (m) => {
    const cmd = parse(svc, m.data);
    if (cmd && cmd.type === 'HystrixCommand') onCommand(svc, cmd);
  };
  es.addEventListener('service', (m) => { const i = parse(svc, m.data); if (i) onService(svc, i); });
  es.addEventListener('breaker', (m) => { const e = parse(svc, m.data); if (e) onBreakerEvent(svc, e); });
  svc.source = es;
}

function main() {
  document.getElementById('minutes').textContent = String(HISTORY_MS / 60000);
  const services = serviceList().map((s) => ({ ...s, panels: new Map() }));
  for (const svc of services) {
    svc.ui = buildCard(svc);
    connect(svc);
  }
  window.dashboardServices = services;
  setInterval(() => services.forEach((svc) => svc.panels.forEach((p) => { trimSamples(p); drawChart(p); })), 5000);
}

main();
