// dashboard.js -- the live dashboard: one EventSource per service, one card per breaker.
//
// Each service's /events.stream sends unnamed messages (HystrixCommand objects,
// once per interval), "service" events (name, uptime, breaker) and "breaker"
// events (open, close, failure, ...). The page keeps the last HISTORY_MS of
// samples per service and redraws its canvas chart on every sample.
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

// Builds the card's DOM and returns the handles the updates need.
function buildCard(svc) {
  const card = el('section', 'card state-offline');
  card.dataset.service = svc.name;
  card.dataset.state = 'offline';
  card.dataset.connected = 'false';
  const h2 = el('h2');
  const badge = el('span', 'badge state-offline', 'connecting');
  h2.append(el('span', 'name', svc.name), badge);
  const breaker = el('div', 'breaker', svc.base);
  const figs = el('div', 'figures');
  const ui = {
    card, badge, breaker,
    errPct: figure(figs, 'error % (window)'),
    rate: figure(figs, 'requests/s (window)'),
    mean: figure(figs, 'mean latency ms'),
  };
  const table = el('table', 'pct');
  const head = el('tr');
  const row = el('tr');
  ui.pct = {};
  for (const k of PCT_KEYS) {
    head.append(el('th', null, `p${k}`));
    ui.pct[k] = el('td', null, '-');
    row.append(ui.pct[k]);
  }
  table.append(head, row);
  ui.canvas = el('canvas', 'chart');
  ui.feed = el('ul', 'feed');
  card.append(h2, breaker, figs, table, ui.canvas, ui.feed);
  document.getElementById('cards').append(card);
  return ui;
}

function setState(ui, state, label) {
  ui.card.className = `card state-${state}`;
  ui.card.dataset.state = state;
  ui.badge.className = `badge state-${state}`;
  ui.badge.textContent = label || state;
}

function fmt(n, digits) {
  return Number.isFinite(n) ? n.toFixed(digits) : '-';
}

function onCommand(svc, cmd) {
  const ui = svc.ui;
  const windowS = (cmd.propertyValue_metricsRollingStatisticalWindowInMilliseconds || 10000) / 1000;
  const rate = cmd.requestCount / windowS;
  svc.hasBreaker = true;
  ui.breaker.textContent = `breaker "${cmd.name}" · threshold ${cmd.propertyValue_circuitBreakerErrorThresholdPercentage}% · ` +
    `timeout ${cmd.propertyValue_executionTimeoutInMilliseconds} ms · reset ${cmd.propertyValue_circuitBreakerSleepWindowInMilliseconds} ms`;
  const state = cmd.state || (cmd.isCircuitBreakerOpen ? 'open' : 'closed');
  setState(ui, state);
  ui.errPct.textContent = fmt(cmd.errorPercentage, 0);
  ui.rate.textContent = fmt(rate, 1);
  ui.mean.textContent = fmt(cmd.latencyExecute_mean, 0);
  for (const k of PCT_KEYS) ui.pct[k].textContent = fmt(cmd.latencyExecute[k], 0);
  svc.samples.push({ t: Date.now(), rate, err: cmd.errorPercentage, state });
  trimSamples(svc);
  drawChart(svc);
}

function onService(svc, info) {
  if (info.breaker === null && !svc.hasBreaker) {
    setState(svc.ui, 'none', 'no breaker');
    svc.ui.breaker.textContent = `last hop: no downstream breaker · up ${fmt(info.uptime_s, 0)} s`;
  } else if (info.state && svc.ui.card.dataset.state !== info.state) {
    setState(svc.ui, info.state);
  }
}

function onBreakerEvent(svc, ev) {
  const li = el('li', `ev-${ev.event}`);
  const time = new Date(ev.time).toLocaleTimeString();
  li.append(el('span', 't', time));
  let text = `${ev.event} (now ${ev.state})`;
  if (ev.latencyMs !== undefined) text += ` ${fmt(ev.latencyMs, 0)} ms`;
  if (ev.errorPercentage !== undefined) text += ` err ${fmt(ev.errorPercentage, 0)}%`;
  if (ev.error) text += ` ${ev.error}`;
  li.append(document.createTextNode(text));
  svc.ui.feed.prepend(li);
  while (svc.ui.feed.children.length > FEED_MAX) svc.ui.feed.lastChild.remove();
  if (['open', 'halfOpen', 'close'].includes(ev.event)) setState(svc.ui, ev.state);
}

function trimSamples(svc) {
  const cutoff = Date.now() - HISTORY_MS;
  while (svc.samples.length && svc.samples[0].t < cutoff) svc.samples.shift();
}

const STATE_COLOURS = { open: '#e5484d', 'forced-open': '#9b1c1f', 'half-open': '#e6a23c' };

// Draws requests/s (blue, left scale) and error % (red, 0..100) over HISTORY_MS;
// periods when the circuit was not closed are shaded in the state's colour.
function drawChart(svc) {
  const c = svc.ui.canvas;
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(c.clientWidth * dpr));
  const h = Math.max(1, Math.round(c.clientHeight * dpr));
  if (c.width !== w || c.height !== h) { c.width = w; c.height = h; }
  const g = c.getContext('2d');
  g.clearRect(0, 0, w, h);
  const now = Date.now();
  const x = (t) => w - ((now - t) / HISTORY_MS) * w;
  const pad = 4 * dpr;
  const s = svc.samples;
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
  es.onopen = () => { svc.ui.card.dataset.connected = 'true'; };
  es.onerror = () => {
    svc.ui.card.dataset.connected = 'false';
    setState(svc.ui, 'offline', 'unreachable');
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
  const services = serviceList().map((s) => ({ ...s, samples: [], hasBreaker: false }));
  for (const svc of services) {
    svc.ui = buildCard(svc);
    connect(svc);
  }
  window.dashboardServices = services;
  setInterval(() => services.forEach((svc) => { trimSamples(svc); drawChart(svc); }), 5000);
}

main();
