// dashboard.js -- the live dashboard: one EventSource and one card per service,
// one panel per breaker of that service, and the controls of the lab.
//
// Each service's /events.stream sends unnamed messages (HystrixCommand objects,
// one per breaker per interval), "service" events (name, uptime, its breakers
// and their states) and "breaker" events (open, close, failure, ...). The page
// keeps the last HISTORY_MS of samples per breaker and redraws its canvas
// chart every second. A card takes the colour of its most troubled breaker.
//
// Every POLL_MS the page also reads each service's /health: whether its
// database is reachable, the runtime faults in force ("chaos"), the restarts
// of make run's supervisor ("supervisor", a row under the header), the retry
// policy of the call to the next hop ("retry": its settings and counts, a
// small panel under the breakers, hidden when /health has none); and, for
// a service whose replicas keep a roster (CB_SHARED=on), its /replicas:
// every live replica with its breakers' states, drawn as a row of chips, so
// that a page reaching one replica per connection through a load balancer
// still shows them all (docs/scale-out.md). The
// controls change those faults (PUT and DELETE /chaos, a row per fault of the
// service's table, GET /chaos's "kinds") and force breakers
// (POST /breaker/open|close?name=...) with the admin token typed once at the
// top of the page and kept in this tab's sessionStorage.
//
// Without ?services= the page follows the chain from the service that
// served it: its own origin's /health names the service and its next hop
// ("next": {"name", "url"}, the CHAIN_SVC it calls), whose /health names the
// next, on whatever ports and hosts they run (findChain). "Calm everything"
// clears every fault and closes every breaker that is not closed, on every
// service (calmEverything).
//
// With tracing on (/health's "tracing": spans sent, and query_url, where
// Jaeger's query API answers), the trace box at the top opens a request's
// trace by its id, the last requests Jaeger holds, or sends one order and
// opens its trace; the trace view (#trace=<id> in the address) draws its
// spans as a waterfall in the cards' place (showTracing, drawTrace).
'use strict';

const HISTORY_MS = 5 * 60 * 1000;
const FEED_MAX = 60;
const STATES_MAX = 40;
const POLL_MS = 2000;
const HEALTH_TIMEOUT_MS = 5000;
// Samples arrive every second; a longer silence is a gap the chart does not bridge.
const GAP_MS = 3500;
const TOKEN_KEY = 'dashboard.adminToken';
// How long a retry count that changed since the last /health read stays marked.
const HIGHLIGHT_MS = 1500;
const STATE_EVENTS = ['open', 'halfOpen', 'close'];
// A repeated event joins a line among the feed's newest this many, above its last state change.
const COLLAPSE_LOOKBACK = 4;
// The chart's time axis spans the samples it has, at least this long, at most HISTORY_MS.
const MIN_SPAN_MS = 60 * 1000;
// The chain has at most this many services (a loop in CHAIN_SVC stops there too).
const MAX_HOPS = 8;

const ERR_TIP = "opossum's error %: failures ÷ every call decided in the window, rejected " +
  'calls included (0..100; calls still running are left out of both). While the circuit is ' +
  'open, each rejected call counts as a call but not as a failure, so this figure falls ' +
  'though nothing got better.';
const FAIL_TIP = 'Failed % of the calls that ran: (failures + timeouts) ÷ (calls that ran to an ' +
  'end), rejected and short-circuited calls left out. It does not fall while the circuit is ' +
  'open; it shows what the calls that reached the next hop met.';

// Reads ?services=name@url,name@url; null without it.
function serviceParam() {
  const param = new URLSearchParams(window.location.search).get('services');
  if (!param) return null;
  return param.split(',').filter(Boolean).map((item) => {
    const at = item.indexOf('@');
    const name = at > 0 ? item.slice(0, at) : item;
    const base = at > 0 ? item.slice(at + 1) : item;
    return { name, base: base.replace(/\/+$/, '') };
  });
}

// The old default, for a page whose own origin has no /health: this host's ports 3000..3002.
function defaultServices() {
  const host = window.location.hostname || '127.0.0.1';
  const proto = window.location.protocol === 'https:' ? 'https:' : 'http:';
  return ['order', 'payment', 'shipment'].map((name, i) =>
    ({ name, base: `${proto}//${host}:${3000 + i}` }));
}

// Reads base's /health; resolves to its JSON, or null when it does not answer
// with a service's /health (503 with a body counts: the database is down).
async function readHealth(base) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), HEALTH_TIMEOUT_MS);
  try {
    const r = await fetch(`${base}/health`, { cache: 'no-store', signal: ctl.signal });
    const h = await r.json();
    return h && typeof h.service === 'string' ? h : null;
  } catch (e) {
    return null;
  } finally {
    clearTimeout(timer);
  }
}

// Where the page may reach a next hop at: the URL it is called at (CHAIN_SVC),
// then, when that names another host (a container's name, say), the same port
// on the page's own host, as docker-compose publishes it.
function hopCandidates(url) {
  const out = [url.replace(/\/+$/, '')];
  try {
    const u = new URL(url);
    if (u.hostname !== window.location.hostname) {
      u.hostname = window.location.hostname;
      out.push(u.origin);
    }
  } catch (e) { /* not a URL: the first candidate fails on its own */ }
  return out;
}

// Follows the chain from the page's own origin, calling found(svc) for each
// service as it is found: {name, base, health}; a hop that answers on none of
// its candidates is found unreachable at its URL, and the walk stops there.
// Resolves to false when the page's own origin has no /health.
async function findChain(found) {
  let base = window.location.origin;
  let health = await readHealth(base);
  if (!health) return false;
  const seen = new Set();
  for (let hops = 0; hops < MAX_HOPS; hops++) {
    seen.add(base);
    found({ name: health.service, base, health });
    const next = health.next;
    if (!next || !next.url) return true;
    let reached = null;
    for (const c of hopCandidates(next.url)) {
      if (seen.has(c)) return true;          // a loop: every service is shown once
      const h = await readHealth(c);
      if (h) { reached = { base: c, health: h }; break; }
    }
    if (!reached) {
      found({ name: next.name, base: hopCandidates(next.url)[0], health: null });
      return true;
    }
    ({ base, health } = reached);
  }
  return true;
}

// A breaker's label: "payment -> shipment" for a chain breaker, "payment ->
// database" for a database breaker; from /health's or the stream's "label"
// when the service sends one, else from its name ("payment->127.0.0.1:3002")
// and the service it calls (/health's next.name).
function breakerLabel(svc, name, given) {
  if (given) return given;
  const from = svc.name;
  if (name.endsWith('->mongodb')) return `${from} -> database`;
  if (svc.nextName) return `${from} -> ${svc.nextName}`;
  return name.includes('->') ? `${from} -> ${name.slice(name.indexOf('->') + 2)}` : name;
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function figure(parent, key, tip) {
  const f = el('div', 'figure');
  const v = el('div', 'v', '-');
  f.append(v, el('div', 'k', key));
  if (tip) { f.title = tip; f.classList.add('tip'); }
  parent.append(f);
  return v;
}

function fmt(n, digits) {
  return Number.isFinite(n) ? n.toFixed(digits) : '-';
}

function clock(t) {
  return new Date(t).toLocaleTimeString([], { hour12: false });
}

// ---- the admin token and the admin calls ----------------------------------------

function token() {
  try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; }
}

function setupToken() {
  const input = document.getElementById('token');
  const state = document.getElementById('token-state');
  input.value = token();
  const show = () => {
    state.textContent = input.value ? 'kept for this tab' : '';
    state.className = 'msg ok';
  };
  input.addEventListener('input', () => {
    try { sessionStorage.setItem(TOKEN_KEY, input.value.trim()); } catch (e) { /* private mode */ }
    show();
  });
  show();
}

// Sends an admin request; resolves to the JSON answer or rejects with a sentence.
async function admin(svc, method, path, body) {
  const t = token();
  if (!t) {
    document.getElementById('token').focus();
    throw new Error('type the admin token in the box at the top first');
  }
  const headers = { Authorization: `Bearer ${t}` };
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(svc.base + path, init);
  } catch (e) {
    throw new Error(`${svc.name} could not be reached`);
  }
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  if (r.ok) return data;
  const why = data && data.error ? data.error : r.statusText;
  if (r.status === 401) throw new Error(`refused (401): wrong or missing admin token; retype it at the top (${why})`);
  if (r.status === 404 && /ADMIN_TOKEN/.test(why))
    throw new Error(`not available (404): ${svc.name} runs without ADMIN_TOKEN, so its admin routes are off`);
  if (r.status === 400) throw new Error(`rejected (400): ${why}`);
  throw new Error(`failed (${r.status}): ${why}`);
}

function say(node, text, ok) {
  node.textContent = text;
  node.className = `msg ${ok ? 'ok' : 'bad'}`;
  node.title = text;
}

// ---- the card ---------------------------------------------------------------------

// Builds a service's card: a header, a panel per breaker (added as the
// service reports them), the fault controls, the pinned feed of state changes
// and the feed of its breakers' latest events.
function buildCard(svc) {
  const card = el('section', 'card state-offline');
  card.dataset.service = svc.name;
  card.dataset.state = 'offline';
  card.dataset.connected = 'false';
  const h2 = el('h2');
  const badge = el('span', 'badge state-offline', 'connecting');
  const db = el('span', 'db', 'db ?');
  db.dataset.db = 'unknown';
  db.title = "Whether the service reaches its database (/health's database.reachable)";
  const right = el('span', 'right');
  right.append(db, badge);
  h2.append(el('span', 'name', svc.name), right);
  const info = el('div', 'breaker', svc.base);
  const replicas = el('div', 'replicas');
  replicas.hidden = true;
  const panels = el('div', 'panels');
  const retry = buildRetry();
  const shed = buildShed();
  const hedge = buildHedge();
  const chaos = buildChaos(svc);
  const statesHead = el('div', 'feedhead', 'state changes');
  const states = el('ul', 'log states');
  const feedHead = el('div', 'feedhead', 'events');
  const feed = el('ul', 'log feed');
  card.append(h2, info, replicas, panels, retry.box, shed, hedge, chaos.box, statesHead, states, feedHead, feed);
  document.getElementById('cards').append(card);
  return { card, badge, db, info, replicas, panels, retry, shed, hedge, chaos, states, feed };
}

// ---- load shedding ------------------------------------------------------------------

// The shed line of a card: one line with the concurrency limit, the
// requests in flight under it and the requests shed. Hidden until /health
// has a "shed" object (a service older than load shedding has none).
function buildShed() {
  const line = el('div', 'shed');
  line.hidden = true;
  line.title = 'Load shedding of POST /create (shed.c): an adaptive concurrency limit (TCP Vegas) ' +
    'asked before the body is read; over it, 503 with Retry-After: 1. SHED* at start, POST /shed ' +
    "(admin token) at runtime; shown from /health's shed, read every 2 s (also /metrics " +
    'service_concurrency_limit, service_in_flight, service_shed_total).';
  return line;
}

// Shows /health's "shed" (s) on the card's shed line, or hides it when there is none.
function showShed(svc, s) {
  const line = svc.ui.shed;
  if (!s || typeof s !== 'object') {
    line.hidden = true;
    return;
  }
  line.hidden = false;
  line.classList.toggle('off', !s.enabled);
  line.textContent = s.enabled
    ? `shedding: limit ${s.limit} · in flight ${s.in_flight} · shed ${s.shed}`
    : `shedding off · shed ${s.shed}`;
}

// ---- hedged calls --------------------------------------------------------------------

// The hedge line of a card (order and payment): the hedging settings in force
// and the extra calls they cost. Hidden until /health has a "hedge" object.
function buildHedge() {
  const line = el('div', 'shed');
  line.hidden = true;
  line.title = 'Hedged calls to the next hop (hop_hedge.c): when a call has not answered after the ' +
    'delay, a copy goes with the same Idempotency-Key; the first success wins, the rest are ' +
    "cancelled; a budget caps hedges at a share of calls. HEDGE_* at start, POST /hedge (admin " +
    "token) at runtime; shown from /health's hedge, read every 2 s.";
  return line;
}

// Shows /health's "hedge" (h) on the card's hedge line, or hides it when there is none.
function showHedge(svc, h) {
  const line = svc.ui.hedge;
  if (!h || typeof h !== 'object') {
    line.hidden = true;
    return;
  }
  const st = h.stats || {};
  const extra = st.calls ? ` (${fmt((st.hedges / st.calls) * 100, 0)}% extra)` : '';
  line.hidden = false;
  line.classList.toggle('off', !h.on);
  line.textContent = h.on
    ? `hedging: ${h.max_copies} copies after ${fmt(st.delay_ms, 0)} ms · hedges ${st.hedges}${extra} · ` +
      `won ${st.hedge_wins} · cancelled ${st.cancelled}`
    : `hedging off · hedges ${st.hedges || 0}`;
}

// ---- the retry policy ---------------------------------------------------------------

// The counts of the retry panel: /health's retry.stats field, the label, and
// what the figure means (its title). Every count is since the service
// started, summed over every setting it had (POST /retry keeps them).
const RETRY_FROM = "From /health's retry.stats, read every 2 s; since the start, summed over " +
  'every setting POST /retry put in force (also /metrics ';
const RETRY_COUNTS = [
  ['calls', 'calls', 'Calls to the next hop made through the retry policy. With retries off ' +
    '(RETRY_ATTEMPTS=1) a call goes straight to the breaker and is not counted here. ' +
    `${RETRY_FROM}retry_calls_total).`],
  ['attempts', 'attempts', 'Attempts those calls made: breaker calls, the first of each call ' +
    `included. ${RETRY_FROM}retry_attempts_total).`],
  ['retries', 'retries (×amp.)', 'Retries: attempts after a call\'s first (retry.stats.retries, ' +
    'which is attempts − calls, plus the rare call whose deadline had passed before its first ' +
    'attempt). ×amp is the amplification, attempts ÷ calls: how many requests the next hop ' +
    `received per call. ${RETRY_FROM}retry_retries_total).`],
  ['budget_exhausted', 'budget gave up', 'Calls whose retry the budget refused ' +
    '(budget-exhausted): the attempt failed and could be retried, but half or fewer of the ' +
    `budget's tokens were left. ${RETRY_FROM}retry_budget_exhausted_total).`],
  ['retries_exhausted', 'exhausted', 'Calls that failed on every attempt (retry-exhausted): ' +
    `all the attempts of the settings in force were made. ${RETRY_FROM}retry_exhausted_total).`],
];

// The retry panel of a card: a line with the settings and the budget's
// tokens as a bar, and a figure per count. Hidden until /health has a
// "retry" object (order and payment; not shipment, the last hop, nor a
// service older than the policy).
function buildRetry() {
  const box = el('div', 'retry');
  box.hidden = true;
  box.dataset.on = '';
  const head = el('div', 'rhead');
  const title = el('span', 'rtitle', 'retries');
  title.title = 'The retry policy around the call to the next hop (hop_retry.c): the retry ' +
    'outside, the breaker inside, each attempt one breaker call. RETRY_* at start, POST /retry ' +
    "(admin token) at runtime; shown from /health's retry, read every 2 s.";
  const settings = el('span', 'rsettings', '-');
  const budget = el('span', 'rbudget');
  const bar = el('span', 'rbar');
  const fill = el('span', 'rfill');
  bar.append(fill, el('span', 'rhalf'));
  const tokens = el('span', 'rtokens', '-');
  budget.append(el('span', 'flabel', 'budget'), bar, tokens);
  head.append(title, settings, budget);
  const figs = el('div', 'figures rfigures');
  const counts = {};
  for (const [key, label, tip] of RETRY_COUNTS) {
    const v = figure(figs, label, tip);
    v.parentNode.dataset.count = key;
    counts[key] = v;
  }
  const amp = el('span', 'amp', '');
  box.append(head, figs);
  return { box, settings, budget, fill, tokens, counts, amp, last: null };
}

// The settings in words, as hop_retry.c logs them; the budget's size and
// ratio are beside its bar (retryBudgetWords), or "no budget" here.
function retryWords(r) {
  if (!r.on) return 'off (RETRY_ATTEMPTS=1)';
  return `on · ${r.attempts} attempts · back-off ${r.base_ms}..${r.cap_ms} ms` +
    (r.budget_tokens > 0 ? '' : ' · no budget');
}

function retryBudgetWords(tokens, r) {
  return `${fmt(tokens, 1)}/${r.budget_tokens} tokens, +${r.budget_ratio} a success`;
}

// Marks a figure whose count changed since the last read, for HIGHLIGHT_MS.
function highlight(fig) {
  fig.classList.add('changed');
  clearTimeout(fig.highlightTimer);
  fig.highlightTimer = setTimeout(() => fig.classList.remove('changed'), HIGHLIGHT_MS);
}

// Shows /health's "retry" (r), or hides the panel when there is none.
function showRetry(svc, r) {
  const ui = svc.ui.retry;
  if (!r || typeof r !== 'object' || !r.stats) {
    ui.box.hidden = true;
    ui.box.dataset.on = '';
    ui.last = null;
    return;
  }
  const st = r.stats;
  ui.box.hidden = false;
  ui.box.dataset.on = String(!!r.on);
  ui.box.classList.toggle('off', !r.on);
  ui.settings.textContent = retryWords(r);
  ui.settings.title = (r.on ? `Each call to the next hop makes up to ${r.attempts} attempts; the ` +
    `back-off before retry n is random in [0, min(${r.cap_ms}, ${r.base_ms} × 2^(n-1))] ms (full ` +
    'jitter). A timeout, a refused or broken connection, 502, 503 and 504 are retried, never a ' +
    'call the breaker refused (open, capacity).'
    : 'Retries are off: each call to the next hop is one breaker call (RETRY_ATTEMPTS=1, the ' +
      'default). POST /retry {"attempts": 3} turns them on; the counts below are kept.') +
    ` Settings from /health's retry (attempts, base_ms, cap_ms, budget_tokens, budget_ratio); ` +
    `changed ${r.changes || 0} time(s) by POST /retry since the start.`;
  for (const [key] of RETRY_COUNTS) {
    const v = ui.counts[key];
    const n = st[key];
    v.textContent = fmt(n, 0);
    v.parentNode.dataset.value = String(n);
    if (ui.last && ui.last[key] !== n) highlight(v.parentNode);
  }
  const amp = st.calls > 0 ? st.attempts / st.calls : NaN;
  ui.amp.textContent = Number.isFinite(amp) ? ` ×${fmt(amp, 2)}` : '';
  ui.counts.retries.append(ui.amp);
  ui.counts.retries.parentNode.dataset.amplification = fmt(amp, 2);
  // the budget: tokens left of the policy in force, over its size; retries
  // are refused while half or fewer are left (the mark at the middle)
  const max = r.budget_tokens;
  const tokens = st.budget_tokens;
  ui.budget.hidden = !(r.on && max > 0);
  ui.budget.dataset.tokens = String(tokens);
  ui.budget.dataset.max = String(max);
  const share = max > 0 ? Math.max(0, Math.min(1, tokens / max)) : 0;
  ui.fill.style.width = `${(share * 100).toFixed(1)}%`;
  ui.fill.classList.toggle('low', max > 0 && tokens <= max / 2);
  ui.tokens.textContent = retryBudgetWords(tokens, r);
  ui.budget.title = `The retry budget: ${fmt(tokens, 3)} of ${max} tokens left (/health's ` +
    'retry.stats.budget_tokens over retry.budget_tokens; /metrics retry_budget_tokens). A failed ' +
    `attempt that may be retried costs a token, a successful one gives back ${r.budget_ratio}; ` +
    'retries are refused while half or fewer are left (the mark in the middle), and those calls ' +
    'are counted under "budget gave up". It belongs to the settings in force: POST /retry starts ' +
    'a full one.';
  ui.last = { ...st };
}

// The fault controls: a row per fault (fraction and its fields), an expiry,
// Apply (PUT /chaos with every row that has a fraction) and Clear (DELETE).
// The rows come from the service's table of faults (GET /chaos's "kinds"),
// read by loadKinds once the service answers; until then there are none.
function buildChaos(svc) {
  const box = el('div', 'chaos');
  const inForce = el('div', 'inforce', 'faults: -');
  inForce.dataset.faults = '';
  const grid = el('div', 'faults');
  const actions = el('div', 'actions');
  const expires = input('', 'expires_s', 'never', 'the faults end by themselves after this many seconds');
  const apply = el('button', 'apply', 'Apply');
  apply.dataset.action = 'apply';
  apply.title = 'PUT /chaos: these faults replace the ones in force';
  const clear = el('button', 'clear', 'Clear');
  clear.dataset.action = 'clear';
  clear.title = 'DELETE /chaos: no faults';
  const msg = el('span', 'msg');
  msg.dataset.for = 'chaos';
  actions.append(el('span', 'flabel', 'expires in'), expires, el('span', 'flabel', 's'), apply, clear, msg);
  box.append(inForce, grid, actions);
  const ui = { box, inForce, grid, kinds: null, inputs: {}, expires, msg, dirty: false, faults: null, at: 0 };
  markDirty(ui, expires);
  apply.addEventListener('click', () => applyChaos(svc, ui));
  clear.addEventListener('click', () => clearChaos(svc, ui));
  return ui;
}

function markDirty(ui, i) {
  ['input', 'change'].forEach((t) => i.addEventListener(t, () => { ui.dirty = true; }));
}

// A fault's own fields: those beyond the ones every fault takes (fraction, expires_s).
function ownFields(kind) {
  return kind.fields.filter((f) => !f.common);
}

// Reads the service's table of faults (GET /chaos, open to all) and builds a
// row per fault: its label, fraction and own fields, each with the table's
// words as its title and its default as its placeholder. Once per card.
async function loadKinds(svc) {
  const ui = svc.ui.chaos;
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), HEALTH_TIMEOUT_MS);
  try {
    const r = await fetch(`${svc.base}/chaos`, { cache: 'no-store', signal: ctl.signal });
    const state = r.ok ? await r.json() : null;
    if (ui.kinds || !state || !Array.isArray(state.kinds)) return;
    ui.kinds = state.kinds;
    for (const k of ui.kinds) {
      const own = ownFields(k);
      const row = el('div', `fault${own.length > 1 ? ' wide' : ''}`);
      row.dataset.fault = k.name;
      row.title = `${k.name}: ${k.about}`;
      row.append(el('span', 'fname', k.label));
      const frac = input(k.name, 'fraction', 'off', 'fraction of requests, 0..1 (empty: off)');
      markDirty(ui, frac);
      row.append(frac);
      ui.inputs[k.name] = { fraction: frac };
      for (const f of own) {
        const i = input(k.name, f.name, f.default === null ? 'req.' : String(f.default),
          `${k.name}.${f.name}: ${f.about}, ${f.type} ${f.min}..${f.max}${f.required ? ' (required)' : ''}`);
        markDirty(ui, i);
        row.append(el('span', 'flabel', f.label), i);
        ui.inputs[k.name][f.name] = i;
      }
      ui.grid.append(row);
    }
    ui.grid.dataset.kinds = ui.kinds.map((k) => k.name).join(',');
    showChaos(svc, state, !ui.dirty);
  } catch (e) {
    // the service is not up yet: the next poll asks again
  } finally {
    clearTimeout(timer);
  }
}

function input(fault, field, placeholder, title) {
  const i = el('input', 'num');
  i.type = 'text';
  i.inputMode = 'decimal';
  i.placeholder = placeholder;
  i.title = title;
  if (fault) i.dataset.fault = fault;
  i.dataset.field = field;
  return i;
}

// A typed value as a number when it reads as one, else as typed (the
// service answers 400 naming the field); undefined when empty.
function typed(node) {
  const v = node.value.trim();
  if (v === '') return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : v;
}

function chaosBody(ui) {
  const body = {};
  const expires = typed(ui.expires);
  for (const k of ui.kinds || []) {
    const fraction = typed(ui.inputs[k.name].fraction);
    if (fraction === undefined) continue;
    const o = { fraction };
    for (const f of ownFields(k)) {
      const v = typed(ui.inputs[k.name][f.name]);
      if (v !== undefined) o[f.name] = v;
    }
    if (expires !== undefined) o.expires_s = expires;
    body[k.name] = o;
  }
  return body;
}

async function applyChaos(svc, ui) {
  const body = chaosBody(ui);
  say(ui.msg, 'applying…', true);
  try {
    const state = await admin(svc, 'PUT', '/chaos', body);
    const n = Object.keys(body).length;
    say(ui.msg, n ? `applied ${Object.keys(body).join(', ')}` : 'applied: no faults', true);
    ui.dirty = false;
    showChaos(svc, state, true);
  } catch (e) {
    say(ui.msg, e.message, false);
  }
}

async function clearChaos(svc, ui) {
  say(ui.msg, 'clearing…', true);
  try {
    const state = await admin(svc, 'DELETE', '/chaos');
    say(ui.msg, 'cleared', true);
    ui.dirty = false;
    showChaos(svc, state, true);
  } catch (e) {
    say(ui.msg, e.message, false);
  }
}

// A fault in force in words: its name, its fields in the table's "shown"
// words ("300±50 ms"), the share of requests.
function describeFault(ui, name, f) {
  const pct = `${fmt(f.fraction * 100, 0)}%`;
  const kind = (ui.kinds || []).find((k) => k.name === name);
  const shown = kind && kind.shown ? kind.shown.replace(/\{(\w+)\}/g, (m, field) => String(f[field])) : '';
  return shown ? `${name} ${shown} ${pct}` : `${name} ${pct}`;
}

// Shows the faults in force (a GET /chaos object) and, when the form has no
// unsent edits (or force is set), puts them in the form too.
function showChaos(svc, state, force) {
  const ui = svc.ui.chaos;
  ui.faults = state && state.faults ? state.faults : {};
  ui.at = Date.now();
  renderInForce(ui);
  if (ui.dirty && !force) return;
  if (ui.box.contains(document.activeElement) && document.activeElement.tagName === 'INPUT' && !force)
    return;
  let expires;
  for (const k of ui.kinds || []) {
    const cur = ui.faults[k.name];
    ui.inputs[k.name].fraction.value = cur ? String(cur.fraction) : '';
    for (const f of ownFields(k))
      ui.inputs[k.name][f.name].value = cur && cur[f.name] !== undefined ? String(cur[f.name]) : '';
    if (cur && Number.isFinite(cur.expires_in_s)) expires = Math.max(expires || 0, cur.expires_in_s);
  }
  ui.expires.value = expires === undefined ? '' : String(Math.ceil(expires));
}

// The "faults in force" line, with the time left to each expiry counted down locally.
function renderInForce(ui) {
  if (!ui.faults) return;
  const kinds = Object.keys(ui.faults);
  const elapsed = (Date.now() - ui.at) / 1000;
  const parts = kinds.map((k) => {
    const f = ui.faults[k];
    let s = describeFault(ui, k, f);
    if (Number.isFinite(f.expires_in_s)) s += `, ends in ${Math.max(0, Math.ceil(f.expires_in_s - elapsed))} s`;
    return s;
  });
  ui.inForce.textContent = kinds.length ? `faults in force: ${parts.join(' · ')}` : 'faults in force: none';
  ui.inForce.dataset.faults = kinds.join(',');
  ui.inForce.classList.toggle('active', kinds.length > 0);
}

// Builds the panel of one breaker: state, force buttons, figures, chart.
function buildPanel(svc, name) {
  const panel = el('div', 'panel state-closed');
  panel.dataset.breaker = name;
  panel.dataset.state = 'closed';
  const h3 = el('h3');
  const badge = el('span', 'badge state-closed', 'closed');
  const open = el('button', 'force', 'force open');
  open.dataset.action = 'open';
  open.title = `POST /breaker/open?name=${name}: hold it open`;
  const close = el('button', 'force', 'close');
  close.dataset.action = 'close';
  close.title = `POST /breaker/close?name=${name}: end a forced state and close it`;
  const msg = el('span', 'msg');
  msg.dataset.for = 'breaker';
  const right = el('span', 'right');
  right.append(msg, open, close, badge);
  const bname = el('span', 'bname', breakerLabel(svc, name));
  bname.title = `the breaker ${name}`;
  h3.append(bname, right);
  const settings = el('div', 'breaker');
  const tuning = el('div', 'breaker tuning');
  tuning.title = "The open period's back-off, from /health's options (CB_BACKOFF at start, " +
    'POST /breaker/options or a lesson\'s tune step at runtime), and the reset timeout in force now.';
  const figs = el('div', 'figures');
  const p = {
    name, panel, badge, settings, tuning, bname, samples: [],
    errPct: figure(figs, 'error % (opossum)', ERR_TIP),
    failPct: figure(figs, 'failed % of run', FAIL_TIP),
    rate: figure(figs, 'calls/s'),
    rejects: figure(figs, 'rejected'),
    mean: figure(figs, 'mean ms'),
  };
  p.pct = el('div', 'pct', 'latency p50 - · p90 - · p99 - · max - ms');
  p.canvas = el('canvas', 'chart');
  panel.append(h3, settings, tuning, figs, p.pct, p.canvas);
  for (const b of [open, close]) {
    b.addEventListener('click', async () => {
      say(msg, '…', true);
      try {
        const r = await admin(svc, 'POST', `/breaker/${b.dataset.action}?name=${encodeURIComponent(name)}`);
        say(msg, r && r.state ? `now ${r.state}` : 'done', true);
        if (r && r.state) setPanelState(svc, p, r.state);
      } catch (e) {
        say(msg, e.message, false);
      }
    });
  }
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

// The failed % of the calls that ran: failures (timeouts and semaphore
// rejections included, as libcb counts them) less semaphore rejections, over
// the calls that ended: successes plus those failures. Rejects are left out.
function failedOfRun(cmd) {
  const failed = Math.max(0, (cmd.rollingCountFailure || 0) - (cmd.rollingCountSemaphoreRejected || 0));
  const ran = (cmd.rollingCountSuccess || 0) + failed;
  return ran ? (failed / ran) * 100 : NaN;
}

function onCommand(svc, cmd) {
  const p = panelFor(svc, cmd.name);
  const windowS = (cmd.propertyValue_metricsRollingStatisticalWindowInMilliseconds || 10000) / 1000;
  const rate = cmd.requestCount / windowS;
  const timeout = cmd.propertyValue_executionTimeoutInMilliseconds;
  p.settings.textContent = `threshold ${cmd.propertyValue_circuitBreakerErrorThresholdPercentage}% · ` +
    `volume ${cmd.propertyValue_circuitBreakerRequestVolumeThreshold} · ` +
    `timeout ${timeout ? `${timeout} ms` : 'none'} · reset ${cmd.propertyValue_circuitBreakerSleepWindowInMilliseconds} ms · ` +
    `window ${fmt(windowS, 0)} s`;
  const state = cmd.state || (cmd.isCircuitBreakerOpen ? 'open' : 'closed');
  setPanelState(svc, p, state);
  const fail = failedOfRun(cmd);
  p.errPct.textContent = fmt(cmd.errorPercentage, 0);
  p.failPct.textContent = fmt(fail, 0);
  p.rate.textContent = fmt(rate, 1);
  p.rejects.textContent = fmt(cmd.rollingCountShortCircuited, 0);
  p.mean.textContent = fmt(cmd.latencyExecute_mean, 0);
  const l = cmd.latencyExecute || {};
  p.pct.textContent = `latency p50 ${fmt(l['50'], 0)} · p90 ${fmt(l['90'], 0)} · ` +
    `p99 ${fmt(l['99'], 0)} · max ${fmt(l['100'], 0)} ms`;
  p.samples.push({ t: Date.now(), rate, err: cmd.errorPercentage, fail, state });
  trimSamples(p);
  drawChart(p);
}

function onService(svc, info) {
  for (const b of info.breakers || []) {
    const p = panelFor(svc, b.name);
    p.bname.textContent = breakerLabel(svc, b.name, b.label);
    if (p.panel.dataset.state !== b.state) setPanelState(svc, p, b.state);
  }
  orderPanels(svc, info.breakers);
  // Replicas: which one this stream reaches, and the shared circuit's state
  // as it sees it (CB_SHARED=on, docs/scale-out.md).
  const sh = info.shared;
  svc.streamReplica = info.replica || null;
  const replica = info.replica ? ` · replica ${info.replica}` : '';
  const shared = sh ? ` · shared ${sh.mode === 'shared' ? (sh.open ? 'open' : 'closed') : sh.mode}` +
    ` (${sh.live} live, ${sh.openVotes}/${sh.needed} votes${sh.prober ? ', prober' : ''})` : '';
  svc.ui.info.textContent = `${svc.base}${replica} · ${svc.panels.size} breaker(s)${shared} · up ${fmt(info.uptime_s, 0)} s`;
  refreshCard(svc);
}

// The line's words for ev, seen count times from first to ev.time:
// "payment -> shipment: reject x57, 12:00:03-12:00:09 (now open) CB_EOPEN".
function eventText(svc, ev, count, first) {
  const who = ev.breaker ? breakerLabel(svc, ev.breaker, ev.label) : svc.name;
  const times = count > 1 ? ` x${count}, ${clock(first)}-${clock(ev.time)}` : '';
  // a change of the service's faults (PUT or DELETE /chaos, or one expired)
  if (ev.event === 'chaos') return `${svc.name}: faults changed${times}: ${ev.detail || ''}`;
  let text = `${who}: ${ev.event}${times} (now ${ev.state})`;
  if (ev.latencyMs !== undefined) text += ` ${fmt(ev.latencyMs, 0)} ms`;
  if (ev.errorPercentage !== undefined) text += ` err ${fmt(ev.errorPercentage, 0)}%`;
  if (ev.error) text += ` ${ev.error}`;
  if (ev.shared) text += ` ${ev.detail || ''}`;
  if (ev.replica) text += ` @${ev.replica}`;
  return text;
}

function eventLine(svc, ev) {
  const li = el('li', `ev-${ev.event}`);
  li.dataset.event = ev.event;
  li.dataset.count = '1';
  li.dataset.first = String(ev.time);
  li.append(el('span', 't', clock(ev.time)));
  // the request whose call it was: a link to its trace (the newest, when lines fold)
  if (ev.trace) li.append(traceLink(ev.trace));
  li.append(document.createTextNode(eventText(svc, ev, 1, ev.time)));
  return li;
}

function traceLink(id) {
  const a = el('a', 'ev-trace', 'trace');
  a.href = `#trace=${id}`;
  a.title = `open the trace of the request this event was part of (${id})`;
  return a;
}

function push(list, li, max) {
  list.prepend(li);
  while (list.children.length > max) list.lastChild.remove();
}

// What makes two events "the same" in the feed: kind, breaker, reason, state,
// replica, and a fault change's words (two different changes never fold).
function eventKey(ev) {
  const words = ev.event === 'chaos' ? ev.detail || '' : '';
  return [ev.breaker, ev.event, ev.error || '', ev.state, ev.replica || '', words].join('|');
}

// Adds ev to the feed, joining it to a line of the same event among the
// newest COLLAPSE_LOOKBACK lines above the last state change (a reject and its
// fallback alternate, so "consecutive" is looked for among a few lines); the
// joined line moves to the top and counts: "reject x57, 12:00:03-12:00:09".
function feedAdd(svc, ev) {
  const feed = svc.ui.feed;
  const key = eventKey(ev);
  if (!ev.shared && !STATE_EVENTS.includes(ev.event)) {
    const lines = Array.from(feed.children).slice(0, COLLAPSE_LOOKBACK);
    for (const li of lines) {
      if (STATE_EVENTS.includes(li.dataset.event)) break;
      if (li.dataset.key !== key) continue;
      const count = Number(li.dataset.count) + 1;
      const first = Number(li.dataset.first);
      li.dataset.count = String(count);
      li.firstChild.textContent = clock(first);
      li.lastChild.textContent = eventText(svc, ev, count, first);
      const link = li.querySelector('a.ev-trace');
      if (ev.trace && link) link.href = `#trace=${ev.trace}`;
      else if (ev.trace) li.insertBefore(traceLink(ev.trace), li.lastChild);
      feed.prepend(li);
      return;
    }
  }
  const li = eventLine(svc, ev);
  li.dataset.key = key;
  push(feed, li, FEED_MAX);
}

// Every event goes to the feed; state changes are also pinned in their own
// list, so a flood of reject/fallback pairs cannot push them out. A state
// change the service kept for a late page ("kept": older than its replay)
// goes to the pinned list only. Events seen already (a stream that
// reconnected replays them) are skipped: an older seq at an older time.
function onBreakerEvent(svc, ev) {
  if (svc.lastSeq !== undefined && ev.seq <= svc.lastSeq && ev.time <= svc.lastTime) return;
  svc.lastSeq = ev.seq;
  svc.lastTime = ev.time;
  if (!ev.kept) feedAdd(svc, ev);
  if (ev.breaker && STATE_EVENTS.includes(ev.event)) {
    const li = eventLine(svc, ev);
    if (ev.kept) li.dataset.kept = 'true';
    push(svc.ui.states, li, STATES_MAX);
    setPanelState(svc, panelFor(svc, ev.breaker), ev.state);
  }
}

function trimSamples(p) {
  const cutoff = Date.now() - HISTORY_MS;
  while (p.samples.length && p.samples[0].t < cutoff) p.samples.shift();
}

// Marks a break in every chart of svc: the stream is down from now on.
function markGap(svc) {
  const t = Date.now();
  for (const p of svc.panels.values()) {
    const last = p.samples[p.samples.length - 1];
    if (last && !last.gap) p.samples.push({ t, gap: true });
  }
}

const STATE_COLOURS = { open: '#e5484d', 'forced-open': '#9b1c1f', 'half-open': '#e6a23c' };
const AXIS_PX = 13;

// The chart's span: the time since its first sample, at least MIN_SPAN_MS and
// at most HISTORY_MS, so that a page opened a moment ago draws across its width.
function chartSpan(samples, now) {
  const first = samples.length ? samples[0].t : now;
  return Math.min(HISTORY_MS, Math.max(MIN_SPAN_MS, now - first));
}

// The clock axis's step for a span: 10 s up to 2 minutes, else a minute.
function tickStep(span) {
  return span <= 2 * 60000 ? 10000 : 60000;
}

// Draws calls/s (blue, own scale), error % (red) and failed % of run (orange,
// dashed; both 0..100) over the chart's span (chartSpan) with a clock axis
// below; periods when the circuit was not closed are shaded in the state's
// colour. A line breaks where a sample is missing (the service was
// unreachable); a lone sample is drawn as a dot.
function drawChart(p) {
  const c = p.canvas;
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(c.clientWidth * dpr));
  const h = Math.max(1, Math.round(c.clientHeight * dpr));
  if (c.width !== w || c.height !== h) { c.width = w; c.height = h; }
  const g = c.getContext('2d');
  g.clearRect(0, 0, w, h);
  const now = Date.now();
  const span = chartSpan(p.samples, now);
  const x = (t) => w - ((now - t) / span) * w;
  const pad = 4 * dpr;
  const axis = AXIS_PX * dpr;
  const ph = h - axis;   // plot height
  const s = p.samples;
  const next = (i) => (i + 1 < s.length && !s[i + 1].gap && s[i + 1].t - s[i].t <= GAP_MS ? s[i + 1] : null);
  for (let i = 0; i < s.length; i++) {
    const colour = STATE_COLOURS[s[i].state];
    if (!colour || s[i].gap) continue;
    const x0 = x(s[i].t);
    const n = next(i);
    const x1 = n ? x(n.t) : (i + 1 === s.length ? w : x0 + (1000 / span) * w);
    g.fillStyle = colour + '33';
    g.fillRect(x0, 0, Math.max(1, x1 - x0), ph);
  }
  // the clock axis: a tick and a label at every step (10 s or a minute)
  g.strokeStyle = '#2b3540';
  g.lineWidth = 1;
  g.fillStyle = '#8a96a3';
  g.font = `${10 * dpr}px system-ui, sans-serif`;
  g.textAlign = 'center';
  g.textBaseline = 'bottom';
  const step = tickStep(span);
  const first = Math.ceil((now - span) / step) * step;
  for (let t = first; t <= now; t += step) {
    const gx = x(t);
    g.beginPath(); g.moveTo(gx, 0); g.lineTo(gx, ph); g.stroke();
    const d = new Date(t);
    const two = (v) => String(v).padStart(2, '0');
    const label = step < 60000 ? `${two(d.getMinutes())}:${two(d.getSeconds())}`
      : `${two(d.getHours())}:${two(d.getMinutes())}`;
    if (gx > 16 * dpr && gx < w - 26 * dpr) g.fillText(label, gx, h);
  }
  g.textAlign = 'right';
  g.fillText('now', w - 2 * dpr, h);
  g.beginPath(); g.moveTo(0, ph + 0.5); g.lineTo(w, ph + 0.5); g.stroke();
  const live = s.filter((v) => !v.gap);
  const maxRate = Math.max(1, ...live.map((v) => v.rate));
  const yPct = (v) => ph - pad - (v / 100) * (ph - 2 * pad);
  line(g, s, x, (v) => ph - pad - (v.rate / maxRate) * (ph - 2 * pad), '#4ea1ff', dpr, false);
  line(g, s, x, (v) => (Number.isFinite(v.fail) ? yPct(v.fail) : NaN), '#f59e0b', dpr, true);
  line(g, s, x, (v) => yPct(v.err), '#e5484d', dpr, false);
  g.textAlign = 'left';
  g.textBaseline = 'alphabetic';
  g.fillStyle = '#8a96a3';
  g.fillText(`max ${maxRate.toFixed(1)} calls/s`, 4 * dpr, 11 * dpr);
}

// Strokes one series, lifting the pen at gaps and at points with no value;
// a point with no neighbour to join (the first sample, the first after a
// gap) is drawn as a dot, so that a fresh page shows its first sample.
function line(g, samples, x, y, colour, dpr, dashed) {
  g.strokeStyle = colour;
  g.fillStyle = colour;
  g.lineWidth = 1.5 * dpr;
  g.setLineDash(dashed ? [4 * dpr, 3 * dpr] : []);
  g.beginPath();
  const dots = [];
  let prev = null;
  let alone = null;
  for (const v of samples) {
    const yy = v.gap ? NaN : y(v);
    if (!Number.isFinite(yy)) { if (alone) dots.push(alone); prev = null; alone = null; continue; }
    const xx = x(v.t);
    if (prev && v.t - prev.t <= GAP_MS) { g.lineTo(xx, yy); alone = null; } else {
      if (alone) dots.push(alone);
      g.moveTo(xx, yy);
      alone = [xx, yy];
    }
    prev = v;
  }
  if (alone) dots.push(alone);
  g.stroke();
  g.setLineDash([]);
  for (const [dx, dy] of dots) {
    g.beginPath();
    g.arc(dx, dy, 2 * dpr, 0, 2 * Math.PI);
    g.fill();
  }
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
    if (svc.ui.card.dataset.connected !== 'false') markGap(svc);
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

function setDb(svc, state, title) {
  const db = svc.ui.db;
  db.dataset.db = state;
  db.textContent = state === 'up' ? 'db up' : state === 'down' ? 'db down' : 'db ?';
  db.className = `db db-${state}`;
  db.title = title;
}

// Reads /health: the database indicator, the faults in force and the retry
// policy (no request of its own: the same answer). One read
// at a time per service, each bounded by HEALTH_TIMEOUT_MS.
async function poll(svc) {
  if (svc.polling) return;
  svc.polling = true;
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), HEALTH_TIMEOUT_MS);
  try {
    const r = await fetch(`${svc.base}/health`, { cache: 'no-store', signal: ctl.signal });
    const h = await r.json();
    showHealthNames(svc, h);
    const reachable = h.database && h.database.reachable;
    const name = h.database && h.database.name ? ` (${h.database.name})` : '';
    setDb(svc, reachable ? 'up' : 'down', reachable ? `the database${name} answers`
      : `the database${name} is unreachable, or a database fault covers every request`);
    if (!svc.ui.chaos.kinds) await loadKinds(svc);
    if (h.chaos) showChaos(svc, h.chaos, false);
    showRetry(svc, h.retry);
    showShed(svc, h.shed);
    showHedge(svc, h.hedge);
    svc.tracing = h.tracing || null;
    showTracing();
    if (h.supervisor) showSupervisor(h.supervisor);
    if (h.roster) await pollReplicas(svc);
    else showReplicas(svc, null);
  } catch (e) {
    setDb(svc, 'unknown', `${svc.name}'s /health did not answer`);
  } finally {
    clearTimeout(timer);
    svc.polling = false;
  }
}

// Puts the card's breaker panels in the service's own order (the next hop's
// first, the database's last), whichever event made each panel first.
function orderPanels(svc, breakers) {
  for (const b of breakers || []) {
    const p = svc.panels.get(b.name);
    if (p) svc.ui.panels.append(p.panel);
  }
}

// Takes the next hop's name and the breakers' labels from /health.
function showHealthNames(svc, h) {
  if (h.next && h.next.name) svc.nextName = h.next.name;
  for (const b of h.breakers || []) {
    const p = svc.panels.get(b.name);
    if (!p) continue;
    p.bname.textContent = breakerLabel(svc, b.name, b.label);
    if (b.options) p.tuning.textContent = tuningWords(b.options, b.resetTimeoutMs);
  }
  orderPanels(svc, h.breakers);
}

// The live options in words: "back-off ×2 up to 60 s · open period now 6000 ms".
function tuningWords(o, nowMs) {
  const cap = o.backoff_max_ms ? ` up to ${fmt(o.backoff_max_ms / 1000, 0)} s` : ', no cap';
  const backoff = o.backoff > 1 ? `back-off ×${fmt(o.backoff, 1)}${cap}` : 'back-off off (×1)';
  return `${backoff} · open period now ${fmt(nowMs, 0)} ms`;
}

// The supervisor's row (make run only): a chip per process with its restarts,
// marked when it has restarted; its last exit (status or signal, the
// watchdog's reason) and when in the chip's title. Every service reads the
// same status file, so the last /health read wins.
function showSupervisor(sup) {
  const row = document.getElementById('supervisor');
  row.hidden = false;
  if (sup.error) {
    row.replaceChildren(el('span', 'rlabel', `supervisor: ${sup.error}`));
    return;
  }
  const procs = Object.entries(sup.processes || {});
  const total = procs.reduce((n, [, p]) => n + (p.restarts || 0), 0);
  row.dataset.restarts = String(total);
  row.replaceChildren(el('span', 'rlabel', `make run restarts (${total})`));
  for (const [name, p] of procs) {
    const watchdog = p.watchdog_kills ? `, ${p.watchdog_kills} by the watchdog` : '';
    const chip = el('span', `chip ${p.restarts ? 'restarted' : 'steady'}${p.state === 'running' ? '' : ' down'}`,
      `${name} ${p.restarts}${p.state === 'running' ? '' : ` (${p.state})`}`);
    chip.dataset.process = name;
    chip.dataset.restarts = String(p.restarts);
    chip.title = `${name}: pid ${p.pid === null ? '-' : p.pid}, ${p.state}, ${p.restarts} restart(s)${watchdog}` +
      (p.last_exit ? `; last exit: ${p.last_exit} at ${p.last_exit_at}` : '; never exited');
    row.append(chip);
  }
}

// The row of replicas (GET /replicas): a chip per live replica in the colour
// of its most troubled breaker, its breakers' states and last heartbeat in
// the chip's title; the replica whose stream the card shows is marked.
function showReplicas(svc, roster) {
  const row = svc.ui.replicas;
  if (!roster || !Array.isArray(roster.replicas)) { row.hidden = true; return; }
  row.hidden = false;
  row.replaceChildren(el('span', 'rlabel', `replicas (${roster.replicas.length})`));
  row.dataset.count = String(roster.replicas.length);
  row.dataset.database = roster.database ? 'up' : 'down';
  for (const r of roster.replicas) {
    let worst = 'closed';
    const states = Object.entries(r.breakers || {});
    for (const [, st] of states) if ((SEVERITY[st] || 0) > (SEVERITY[worst] || 0)) worst = st;
    const chip = el('span', `chip state-${states.length ? worst : 'none'}`, r.replica);
    chip.dataset.replica = r.replica;
    chip.dataset.state = states.length ? worst : 'none';
    if (r.replica === svc.streamReplica) chip.classList.add('streamed');
    chip.title = `${r.replica}: ${states.map(([n, st]) => `${n} ${st}`).join(', ') || 'no breaker'}; ` +
      `heard from ${fmt(r.seenMsAgo / 1000, 1)} s ago, up ${fmt(r.uptimeS, 0)} s` +
      (r.replica === svc.streamReplica ? '; the charts below are its stream' : '');
    row.append(chip);
  }
  if (!roster.database) {
    row.append(el('span', 'rnote', 'database unreachable: this replica alone'));
  }
}

// Reads /replicas when /health says the service keeps a roster ("roster":
// true, CB_SHARED=on); without one the row stays hidden.
async function pollReplicas(svc) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), HEALTH_TIMEOUT_MS);
  try {
    const r = await fetch(`${svc.base}/replicas`, { cache: 'no-store', signal: ctl.signal });
    showReplicas(svc, r.ok ? await r.json() : null);
  } catch (e) {
    showReplicas(svc, null);
  } finally {
    clearTimeout(timer);
  }
}

// ---- traces: a request's spans, read from Jaeger and drawn as a waterfall ----------
//
// /health's "tracing" says whether the service sends spans ("on") and where
// Jaeger's query API answers ("query_url", the TRACES_QUERY_URL setting).
// The page reads <query_url>/api/traces/<id> (Jaeger's JSON: data[0].spans
// and processes) and draws one row per span, indented under its parent
// (the CHILD_OF reference), its bar from start to end on the trace's time
// axis in its service's colour, a failed span (tag error=true) marked, the
// span's events (the breaker's: timeout, failure, fallback, open...) as
// marks with their names on its bar, and a line of its key attributes. The
// trace view takes the cards' place; #trace=<id> in the address opens it.
// Spans reach Jaeger in batches (OTEL_BSP_SCHEDULE_DELAY, a second by
// default), so a trace is read again until its span count holds still.

const TRACE_READS = 10;             // reads of one trace at most
const TRACE_READ_EVERY_MS = 1000;   // between two reads
const TRACE_HOLD_READS = 3;         // reads with the same span count that make a trace whole
const TRACE_TIMEOUT_MS = 8000;      // one read of Jaeger's API
const RECENT_LIMIT = 40;            // traces the recent list asks for
const TRACE_ID_RE = /^[0-9a-f]{1,32}$/;
// service colours, in chain order (order, payment, shipment, then any other);
// red stays for failures
const SERVICE_COLOURS = ['#4ea1ff', '#b48cff', '#2dd4bf', '#f5c87a', '#f0abfc', '#93c5fd', '#a3e635'];
// the sample order "Send one" posts (order's required fields, as order/tests.http)
const SAMPLE_ORDER = { id: 'dashboard', items: ['book'], payment: { id: 'dashboard', amount: 12.5,
  shipment: { id: 'dashboard', directions: 'north' } } };

const traceUi = { services: [], queryUrl: null, offWords: '', known: false, reading: 0, openId: null, recentFilter: 'all',
  recentSort: 'newest', colours: new Map() };  // colours: other services' places

// Shows the tracing settings of the page's services (each /health's "tracing",
// svc.tracing): the controls when one names a query_url with spans on, else one
// line on how to turn tracing on. Opens the trace in the address once it can.
function showTracing() {
  const box = document.getElementById('traces');
  const state = document.getElementById('trace-state');
  const all = traceUi.services.filter((s) => s.tracing !== undefined);
  if (!all.length) return;            // no /health answered yet
  const withUrl = all.find((s) => s.tracing && s.tracing.on && s.tracing.query_url);
  const sending = all.find((s) => s.tracing && s.tracing.on);
  const named = all.find((s) => s.tracing && s.tracing.query_url);
  traceUi.queryUrl = withUrl ? withUrl.tracing.query_url.replace(/\/+$/, '') : null;
  traceUi.known = true;
  document.getElementById('trace-from').textContent = traceUi.queryUrl || 'none (tracing is off)';
  box.dataset.state = traceUi.queryUrl ? 'on' : 'off';
  for (const id of ['trace-label', 'trace-id', 'trace-open', 'trace-recent', 'trace-send'])
    document.getElementById(id).hidden = !traceUi.queryUrl;
  if (traceUi.queryUrl) {
    if (state.dataset.off) { state.textContent = ''; delete state.dataset.off; }
  } else {
    const why = sending ? `${sending.name} sends spans, but no service names where to read them ` +
      '(TRACES_QUERY_URL)' : named ? 'no service sends spans (OTEL_EXPORTER_OTLP_ENDPOINT)'
      : 'no service sends spans';
    traceUi.offWords = `${why}; start with make run TRACES=on`;
    state.textContent = `tracing off: ${traceUi.offWords}`;
    state.className = 'msg off';
    state.dataset.off = 'true';
  }
  const wanted = hashTrace();
  if (wanted !== null && traceUi.openId === null) openFromHash();
}

// The trace id in the address (#trace=<id>), '' for #trace, null without one.
function hashTrace() {
  const m = /^#trace(?:=([^&]*))?/.exec(window.location.hash);
  if (!m) return null;
  try {
    return decodeURIComponent(m[1] || '').trim().toLowerCase();
  } catch (e) {
    return m[1];                      // a stray %: shown as not a trace id
  }
}

// Opens what the address names: a trace (#trace=<id>), the recent list
// (#trace), or the cards (no fragment). What is open already is read again
// only when again is set (Reload; the same fragment asked for again).
function openFromHash(again) {
  const id = hashTrace();
  if (id === null) { closeTraceView(); return; }
  if (!traceUi.known) return;         // showTracing() opens it once /health answered
  if (again !== true && id === traceUi.openId && !document.getElementById('trace-view').hidden) return;
  showTraceView();
  if (!traceUi.queryUrl) {
    traceMessage('off', `No trace to read: tracing is off (${traceUi.offWords}).`);
    return;
  }
  if (id === '') { showRecent(); return; }
  document.getElementById('trace-id').value = id;
  if (!TRACE_ID_RE.test(id)) {
    traceMessage('error', `"${id}" is not a trace id: 32 hex digits, the "trace" of an answer of POST /create.`);
    return;
  }
  readTrace(id);
}

function showTraceView() {
  document.getElementById('cards').hidden = true;
  document.getElementById('trace-view').hidden = false;
}

function closeTraceView() {
  traceUi.reading++;                  // a read still going stops
  traceUi.openId = null;
  document.getElementById('trace-view').hidden = true;
  document.getElementById('cards').hidden = false;
}

// Says what the view shows instead of a trace (loading, missing, an error).
function traceMessage(state, text) {
  const view = document.getElementById('trace-view');
  view.dataset.state = state;
  document.getElementById('trace-body').replaceChildren(el('p', `trace-msg ${state}`, text));
}

// Puts #<value> in the address (null: none) and opens what it names; the
// same fragment again reads it again.
function setHash(value) {
  const want = value === null ? '' : `#${value}`;
  if (window.location.hash === want) openFromHash(true);
  else if (value === null) {
    history.pushState(null, '', window.location.pathname + window.location.search);
    openFromHash();
  } else window.location.hash = value;   // hashchange opens it
}

// GETs a path of Jaeger's query API; resolves to its JSON, null on 404;
// rejects with a sentence.
async function jaeger(path) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), TRACE_TIMEOUT_MS);
  let r;
  try {
    r = await fetch(`${traceUi.queryUrl}${path}`, { cache: 'no-store', signal: ctl.signal });
  } catch (e) {
    throw new Error(`Jaeger's query API at ${traceUi.queryUrl} did not answer this page: it is down, ` +
      `or it does not allow this page's origin (${window.location.origin}) in its cors allowed_origins`);
  } finally {
    clearTimeout(timer);
  }
  if (r.status === 404) return null;
  if (!r.ok) throw new Error(`Jaeger answered ${r.status} to ${path}`);
  return r.json();
}

// Jaeger's trace (one element of "data") as spans with their service, tags and
// parent made plain: [{id, parent, service, name, start, duration (µs), tags
// {key: value}, events [{t, name, fields}], failed}].
function plainSpans(trace) {
  const procs = trace.processes || {};
  return (trace.spans || []).map((s) => {
    const tags = {};
    for (const t of s.tags || []) tags[t.key] = t.value;
    const ref = (s.references || []).find((r) => r.refType === 'CHILD_OF');
    const events = (s.logs || []).map((l) => {
      const fields = {};
      for (const f of l.fields || []) fields[f.key] = f.value;
      return { t: l.timestamp, name: String(fields.event || 'event'), fields };
    });
    const failed = tags.error === true || tags.error === 'true' || tags['otel.status_code'] === 'ERROR';
    return { id: s.spanID, parent: ref ? ref.spanID : null, service: (procs[s.processID] || {}).serviceName || '?',
      name: s.operationName, start: s.startTime, duration: s.duration, tags, events, failed };
  });
}

// The spans in waterfall order: each parent before its children, children
// by start time; each with its depth. A span whose parent is not in the
// trace starts a tree of its own: the first of them is the request's root
// (its parent, if any, is the caller's: the chaos runner's traceparent names
// one), the others are marked orphan (a span lost or still on its way).
function waterfallOrder(spans) {
  const ids = new Set(spans.map((s) => s.id));
  const kids = new Map();
  const roots = [];
  for (const s of spans) {
    if (s.parent && ids.has(s.parent)) {
      if (!kids.has(s.parent)) kids.set(s.parent, []);
      kids.get(s.parent).push(s);
    } else {
      roots.push(s);
    }
  }
  const byStart = (a, b) => a.start - b.start || a.duration - b.duration;
  roots.sort(byStart).forEach((s, i) => { s.orphan = i > 0 && !!s.parent; });
  const out = [];
  const walk = (s, depth) => {
    if (out.length > spans.length) return;    // a loop in bad data: each span once
    s.depth = depth;
    out.push(s);
    for (const k of (kids.get(s.id) || []).sort(byStart)) walk(k, depth + 1);
  };
  roots.sort((a, b) => (a.orphan - b.orphan) || byStart(a, b)).forEach((s) => walk(s, 0));
  return out;
}

// A service's colour: its place in the chain's, then one per other service as met.
function serviceColour(name) {
  const chain = traceUi.services.map((s) => s.name);
  let i = chain.indexOf(name);
  if (i < 0) {
    if (!traceUi.colours.has(name)) traceUi.colours.set(name, chain.length + traceUi.colours.size);
    i = traceUi.colours.get(name);
  }
  return SERVICE_COLOURS[i % SERVICE_COLOURS.length];
}

// A duration in µs as a person reads it: 0.42 ms, 4.5 ms, 312 ms, 1.23 s.
function spanTime(us) {
  const ms = us / 1000;
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${ms.toFixed(0)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

// The span's key attributes in a few words: the server's status and
// outcome, the breaker's outcome and states, the client's target, status and
// error, the database write.
function spanWords(s) {
  const t = s.tags;
  const w = [];
  if (t['http.response.status_code'] !== undefined) w.push(`status ${t['http.response.status_code']}`);
  if (t['app.outcome']) w.push(`outcome ${t['app.outcome']}` + (t['app.degraded.reason'] ? ` (${t['app.degraded.reason']})` : ''));
  if (t['app.refused']) w.push(`refused at the door (${t['app.refused']})`);
  if (t['breaker.outcome']) w.push(`breaker ${t['breaker.outcome']}` + (t['breaker.cause'] ? ` (cause ${t['breaker.cause']})` : ''));
  if (t['breaker.state.before'] && t['breaker.state.after'])
    w.push(t['breaker.state.before'] === t['breaker.state.after'] ? `stayed ${t['breaker.state.after']}`
      : `${t['breaker.state.before']} → ${t['breaker.state.after']}`);
  if (t['span.kind'] === 'client' && t['server.address'])
    w.push(`to ${t['server.address']}${t['server.port'] !== undefined ? `:${t['server.port']}` : ''}`);
  if (t['http.request.resend_count'] !== undefined) w.push(`retry ${t['http.request.resend_count']}`);
  if (t['app.hedge.copy'] !== undefined) w.push(`hedge copy ${t['app.hedge.copy']}`);
  if (t['db.system']) w.push(`${t['db.system']} ${t['db.operation'] || ''} ${t['db.collection.name'] || ''}`.trim());
  if (t['error.type']) w.push(`error ${t['error.type']}`);
  return w.join(' · ');
}

// Tick step (ms) for a span of total ms: 1, 2 or 5 times a power of ten, about 8 ticks.
function traceStep(totalMs) {
  const raw = Math.max(totalMs / 8, 0.001);
  const p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((k) => k * p).find((v) => v >= raw);
}

// The events of one span grouped where their marks would touch (within
// about 10 px of a track `width` px wide): [{at (0..1), names}].
function eventGroups(s, t0, total, width) {
  const groups = [];
  for (const e of [...s.events].sort((a, b) => a.t - b.t)) {
    const at = Math.min(1, Math.max(0, (e.t - t0) / total));
    const last = groups[groups.length - 1];
    if (last && (at - last.at) * width < 10) last.events.push(e);
    else groups.push({ at, events: [e] });
  }
  return groups;
}

// Draws the trace (Jaeger's JSON trace object) in the view.
function drawTrace(id, trace) {
  const spans = waterfallOrder(plainSpans(trace));
  const view = document.getElementById('trace-view');
  const body = document.getElementById('trace-body');
  if (!spans.length) { traceMessage('missing', `Trace ${id} has no spans.`); return; }
  const t0 = Math.min(...spans.map((s) => s.start));
  const end = Math.max(...spans.map((s) => s.start + s.duration));
  const total = Math.max(1, end - t0);
  const services = [...new Set(spans.map((s) => s.service))];
  const root = spans[0];
  const failed = spans.filter((s) => s.failed).length;
  view.dataset.state = 'shown';
  view.dataset.trace = id;
  view.dataset.spans = String(spans.length);
  document.getElementById('trace-title').textContent = `Trace ${id}`;
  const outcome = root.tags['app.outcome'] ? `, ${root.tags['app.outcome']}` +
    (root.tags['app.degraded.reason'] ? ` (${root.tags['app.degraded.reason']})` : '')
    : root.tags['app.refused'] ? `, refused at the door (${root.tags['app.refused']})` : '';
  const status = root.tags['http.response.status_code'] !== undefined ? ` ${root.tags['http.response.status_code']}` : '';
  document.getElementById('trace-summary').textContent = `${clock(t0 / 1000)} · ${spanTime(total)} · ` +
    `${spans.length} spans on ${services.length} service(s) · ${failed} failed · ${root.service} ` +
    `${root.name} answered${status}${outcome}`;
  const legend = document.getElementById('trace-legend');
  legend.replaceChildren(...services.map((n) => {
    const c = el('span', 'svc-key', n);
    c.style.setProperty('--svc', serviceColour(n));
    return c;
  }));
  const json = document.getElementById('trace-json');
  json.href = `${traceUi.queryUrl}/api/traces/${id}`;
  json.hidden = false;

  const wf = el('div', 'wf');
  const head = el('div', 'wf-row wf-axis');
  const axis = el('div', 'wf-track');
  head.append(el('div', 'wf-name', 'span (service) · duration'), axis);
  wf.append(head);
  const grid = el('div', 'wf-grid');
  const stepMs = traceStep(total / 1000);
  for (let ms = 0; ms <= total / 1000 + 1e-9; ms += stepMs) {
    const x = `${((ms * 1000) / total) * 100}%`;
    const line = el('span', 'wf-tick');
    line.style.left = x;
    grid.append(line);
    const label = el('span', 'wf-ticklabel', `${+ms.toPrecision(6)} ms`);
    label.style.left = x;
    if (ms * 1000 > total * 0.93) label.classList.add('end');
    axis.append(label);
  }
  wf.append(grid);
  body.replaceChildren(wf);
  const width = Math.max(200, body.clientWidth - 490);   // the track: the body less the name column (--namew)
  for (const s of spans) {
    const row = el('div', `wf-row${s.failed ? ' failed' : ''}`);
    row.dataset.service = s.service;
    row.dataset.name = s.name;
    row.dataset.spanId = s.id;
    row.dataset.ms = (s.duration / 1000).toFixed(3);
    row.dataset.failed = String(s.failed);
    row.dataset.depth = String(s.depth);
    row.dataset.events = s.events.map((e) => e.name).join(',');
    row.style.setProperty('--svc', serviceColour(s.service));
    row.title = `${s.service}: ${s.name}, ${spanTime(s.duration)} from ${spanTime(s.start - t0)}` +
      (s.orphan ? '\n(its parent span is not in the trace)' : '') + '\n' +
      Object.entries(s.tags).map(([k, v]) => `${k} = ${v}`).join('\n') +
      (s.events.length ? '\nevents: ' + s.events.map((e) => `${e.name} at ${spanTime(e.t - t0)}` +
        (e.fields['breaker.state'] ? ` (${e.fields['breaker.state']})` : '') +
        (e.fields['error.type'] ? ` ${e.fields['error.type']}` : '')).join(', ') : '');
    const name = el('div', 'wf-name');
    name.style.paddingLeft = `${6 + s.depth * 12}px`;
    const line1 = el('div', 'wf-line1');
    const nm = el('span', 'wf-span', s.name);
    line1.append(el('span', 'wf-dot'), nm, el('span', 'wf-svc', s.service));
    if (s.failed) line1.append(el('span', 'wf-failed', 'failed'));
    line1.append(el('span', 'wf-dur', spanTime(s.duration)));
    const words = spanWords(s);
    name.append(line1, el('div', 'wf-attrs', (s.orphan ? '(parent not in the trace) ' : '') + words));
    const track = el('div', 'wf-track');
    const bar = el('div', 'wf-bar');
    bar.style.left = `${((s.start - t0) / total) * 100}%`;
    bar.style.width = `max(2px, ${(s.duration / total) * 100}%)`;
    track.append(bar);
    for (const g of eventGroups(s, t0, total, width)) {
      const mark = el('span', `wf-mark ev-${g.events[0].name}`);
      mark.style.left = `${g.at * 100}%`;
      mark.dataset.events = g.events.map((e) => e.name).join(',');
      const label = el('span', `wf-evlabel ev-${g.events[0].name}`, g.events.map((e) => e.name).join(' · '));
      label.style.left = `${g.at * 100}%`;
      if (g.at > 0.75) label.classList.add('left');
      label.dataset.events = mark.dataset.events;
      track.append(mark, label);
    }
    row.append(name, track);
    wf.append(row);
  }
}

// Reads trace id from Jaeger and draws it; reads it again every
// TRACE_READ_EVERY_MS, drawing it anew when its span count changed, until the
// count held for TRACE_HOLD_READS reads (then it is marked whole) or after
// TRACE_READS reads; stops when another trace is opened or the view is closed.
async function readTrace(id) {
  const mine = ++traceUi.reading;
  traceUi.openId = id;
  const view = document.getElementById('trace-view');
  view.dataset.trace = id;
  view.dataset.whole = 'false';
  document.getElementById('trace-title').textContent = `Trace ${id}`;
  document.getElementById('trace-summary').textContent = '';
  document.getElementById('trace-legend').replaceChildren();
  document.getElementById('trace-json').hidden = true;
  traceMessage('loading', `Reading trace ${id} from ${traceUi.queryUrl}…`);
  let count = 0;
  let held = 0;
  for (let i = 0; i < TRACE_READS && held < TRACE_HOLD_READS; i++) {
    if (i) await new Promise((ok) => setTimeout(ok, TRACE_READ_EVERY_MS));
    if (mine !== traceUi.reading) return;
    let got;
    try {
      got = await jaeger(`/api/traces/${id}`);
    } catch (e) {
      if (mine === traceUi.reading) traceMessage('error', e.message);
      return;
    }
    if (mine !== traceUi.reading) return;
    const trace = got && Array.isArray(got.data) && got.data[0];
    const n = trace ? (trace.spans || []).length : 0;
    if (n && n !== count) {
      drawTrace(id, trace);
      count = n;
      held = 1;
    } else if (n) {
      held++;
    } else {
      traceMessage('loading', `Jaeger has no span of trace ${id} yet (read ${i + 1} of ${TRACE_READS}); ` +
        'spans leave each service every second or so…');
    }
  }
  if (count) view.dataset.whole = 'true';
  else traceMessage('missing', `Jaeger at ${traceUi.queryUrl} has no trace ${id}: the request was refused at ` +
    "the door (load shedding's or a full worker pool's 503 records no span), not sampled (OTEL_TRACES_SAMPLER), " +
    'its spans were dropped (/health tracing.dropped), or Jaeger was restarted (it keeps traces in memory).');
}

// Whether span s is a breaker call made as a half-open trial: the circuit was
// half-open when it began (or turned half-open at it), and the call was not
// refused (a call that finds the trial slot taken is rejected).
function isTrial(s) {
  const events = s.events.map((e) => e.name);
  return (s.tags['breaker.state.before'] === 'half-open' || events.includes('halfOpen')) &&
    !events.includes('reject');
}

// One trace of a search, summed up: its root span's service, outcome and
// status, its length, its failed spans, its degraded server spans and the
// breaker calls made as half-open trials.
function traceSummary(trace) {
  const spans = plainSpans(trace);
  const ids = new Set(spans.map((s) => s.id));
  const root = spans.filter((s) => !s.parent || !ids.has(s.parent)).sort((a, b) => a.start - b.start)[0];
  const t0 = Math.min(...spans.map((s) => s.start));
  const end = Math.max(...spans.map((s) => s.start + s.duration));
  const byStart = (a, b) => a.start - b.start;
  return { id: trace.traceID, start: t0, total: end - t0, spans: spans.length, spansList: spans, root,
    failed: spans.filter((s) => s.failed).length,
    degraded: spans.filter((s) => s.tags['app.outcome'] === 'degraded').sort(byStart),
    trials: spans.filter(isTrial).sort(byStart),
    copies: spans.filter((s) => s.tags['http.request.resend_count'] > 0 || s.tags['app.hedge.copy'] > 1).length,
    services: new Set(spans.map((s) => s.service)).size };
}

// The recent list's choices: what Jaeger is asked (the chain's first
// service's POST /create, or, on every service of the chain, each of a few
// tag searches) and which of the traces found are shown.
const RECENT_FILTERS = [
  { key: 'all', words: 'all', tip: "the chain's first service's last requests", searches: null, keep: () => true },
  { key: 'degraded', words: 'degraded', tip: 'requests with a hop that answered its fallback (app.outcome degraded), ' +
    'searched on every service', searches: [{ 'app.outcome': 'degraded' }], keep: (t) => t.degraded.length > 0 },
  { key: 'failed', words: 'with a failed span', tip: "of the first service's last requests, those with a span " +
    'marked error', searches: null, keep: (t) => t.failed > 0 },
  { key: 'trials', words: 'half-open trials', tip: 'requests whose call was a half-open trial of a breaker ' +
    '(breaker.state.before half-open), searched on every service',
  searches: [{ 'breaker.state.before': 'half-open' }], keep: (t) => t.trials.length > 0 },
  { key: 'copies', words: 'retried or hedged', tip: 'requests with a call made more than once: a retry ' +
    '(http.request.resend_count) or a hedged copy (app.hedge.copy), searched on every service',
  searches: [{ 'http.request.resend_count': '1' }, { 'app.hedge.copy': '2' }], keep: (t) => t.copies > 0 },
];

// Asks Jaeger for the traces of filter f: one search, or each of f's tag
// searches on every service of the chain; resolves to their summaries, each
// trace once.
async function recentTraces(f) {
  const first = traceUi.services[0] ? traceUi.services[0].name : 'order';
  const searches = f.searches
    ? traceUi.services.flatMap((s) => f.searches.map((tags) =>
      `service=${encodeURIComponent(s.name)}&tags=${encodeURIComponent(JSON.stringify(tags))}`))
    : [`service=${encodeURIComponent(first)}&operation=${encodeURIComponent('POST /create')}`];
  const found = new Map();
  for (const q of searches) {
    const got = await jaeger(`/api/traces?${q}&limit=${RECENT_LIMIT}&lookback=1h`);
    for (const t of (got && got.data) || []) if (!found.has(t.traceID)) found.set(t.traceID, traceSummary(t));
  }
  return [...found.values()].filter(f.keep);
}

// A trace of the list in words: the degraded hops, the trials, the failed spans.
function recentWords(t) {
  const w = t.degraded.map((s) => `${s.service} degraded (${s.tags['app.degraded.reason'] || '?'})`);
  for (const s of t.trials)
    w.push(`trial of ${s.tags['breaker.label'] || s.name}: ${s.tags['breaker.outcome'] || '?'}` +
      (s.tags['breaker.cause'] ? ` (${s.tags['breaker.cause']})` : '') + `, now ${s.tags['breaker.state.after'] || '?'}`);
  const retries = Math.max(0, ...t.spansList.map((s) => s.tags['http.request.resend_count'] || 0));
  const copies = Math.max(0, ...t.spansList.map((s) => s.tags['app.hedge.copy'] || 0));
  if (retries) w.push(`retried (${retries + 1} attempts)`);
  if (copies > 1) w.push(`hedged (${copies} copies)`);
  if (!w.length) w.push(t.root.tags['app.outcome'] || t.root.name);
  if (t.failed) w.push(`${t.failed} failed span(s)`);
  return w.join(' · ');
}

// The recent list: the traces of the chosen filter (RECENT_FILTERS), newest
// or slowest first; each a link to #trace=<id>.
async function showRecent() {
  const mine = ++traceUi.reading;
  traceUi.openId = '';
  const view = document.getElementById('trace-view');
  delete view.dataset.trace;
  document.getElementById('trace-title').textContent = 'Recent requests';
  document.getElementById('trace-legend').replaceChildren();
  document.getElementById('trace-json').hidden = true;
  const f = RECENT_FILTERS.find((x) => x.key === traceUi.recentFilter) || RECENT_FILTERS[0];
  document.getElementById('trace-summary').textContent = `${f.tip}, from ${traceUi.queryUrl} (the last hour)`;
  const body = document.getElementById('trace-body');
  const bar = el('div', 'recent-bar');
  const list = el('div', 'recent');
  const chips = RECENT_FILTERS.map((x) => {
    const b = el('button', `chip-btn${x === f ? ' on' : ''}`, x.words);
    b.dataset.filter = x.key;
    b.title = x.tip;
    b.addEventListener('click', () => { traceUi.recentFilter = x.key; showRecent(); });
    return b;
  });
  const sorts = [['newest', 'newest first'], ['slowest', 'slowest first']].map(([key, words]) => {
    const b = el('button', `chip-btn${traceUi.recentSort === key ? ' on' : ''}`, words);
    b.dataset.sort = key;
    b.addEventListener('click', () => { traceUi.recentSort = key; fill(); });
    return b;
  });
  bar.append(el('span', 'flabel', 'show'), ...chips, el('span', 'flabel', 'order'), ...sorts);
  body.replaceChildren(bar, list);
  view.dataset.state = 'loading';
  list.append(el('p', 'trace-msg', 'Asking Jaeger…'));
  let all;
  try {
    all = await recentTraces(f);
  } catch (e) {
    if (mine === traceUi.reading) traceMessage('error', e.message);
    return;
  }
  if (mine !== traceUi.reading) return;
  view.dataset.state = 'recent';
  view.dataset.filter = f.key;
  function fill() {
    sorts.forEach((b) => b.classList.toggle('on', b.dataset.sort === traceUi.recentSort));
    const keep = [...all].sort(traceUi.recentSort === 'slowest' ? (a, b) => b.total - a.total
      : (a, b) => b.start - a.start);
    list.replaceChildren();
    if (!keep.length) {
      list.append(el('p', 'trace-msg', `Jaeger holds none from the last hour: send one (the button at the top), ` +
        'or run a lesson.'));
      return;
    }
    for (const t of keep) {
      const a = el('a', `recent-row${t.failed ? ' failed' : ''}`);
      a.href = `#trace=${t.id}`;
      a.dataset.trace = t.id;
      const st = t.root.tags['http.response.status_code'];
      a.append(el('span', 't', clock(t.start / 1000)), el('span', 'r-ms', spanTime(t.total)),
        el('span', `r-status${st >= 500 ? ' bad' : ''}`, st === undefined ? '-' : String(st)),
        el('span', 'r-what', recentWords(t)), el('span', 'r-id', `${t.spans} spans · ${t.id}`));
      list.append(a);
    }
  }
  fill();
}

// "Send one": POSTs SAMPLE_ORDER to the chain's first service and opens the
// answer's trace.
async function sendOne() {
  const state = document.getElementById('trace-state');
  const svc = traceUi.services[0];
  if (!svc) return;
  say(state, `sending to ${svc.name}…`, true);
  try {
    const r = await fetch(`${svc.base}/create`, { method: 'POST', cache: 'no-store',
      headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(SAMPLE_ORDER) });
    const a = await r.json();
    let words = `${r.status} ${a.status || ''}`;
    for (let hop = a.next; hop && typeof hop === 'object'; hop = hop.next)
      if (hop.status === 'degraded') words += `, ${hop.service} degraded (${hop.reason})`;
    if (a.status === 'degraded') words += ` (${a.reason})`;
    say(state, `${svc.name} answered ${words}`, r.ok);
    if (a.trace) setHash(`trace=${a.trace}`);
  } catch (e) {
    say(state, `${svc.name} could not be reached`, false);
  }
}

// Wires the trace controls (the id box, Open, Recent, Send one; the view's
// Reload, Recent and Close; Esc; the address's #trace=) for the page's services.
function setupTraces(services) {
  traceUi.services = services;
  const input = document.getElementById('trace-id');
  const open = () => {
    const id = input.value.trim().toLowerCase();
    if (id) setHash(`trace=${encodeURIComponent(id)}`);
  };
  document.getElementById('trace-open').addEventListener('click', open);
  input.addEventListener('keydown', (e) => { if (e.key === 'Enter') open(); });
  const recent = () => setHash('trace');
  document.getElementById('trace-recent').addEventListener('click', recent);
  document.getElementById('trace-back').addEventListener('click', recent);
  document.getElementById('trace-send').addEventListener('click', sendOne);
  document.getElementById('trace-close').addEventListener('click', () => setHash(null));
  document.getElementById('trace-reload').addEventListener('click', () => openFromHash(true));
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && !document.getElementById('trace-view').hidden) setHash(null);
  });
  // going back and forth in the tab's history: either event may come, or both
  window.addEventListener('hashchange', () => openFromHash(false));
  window.addEventListener('popstate', () => openFromHash(false));
}

// ---- "Calm everything" ---------------------------------------------------------

// Calms one service: reads its faults (GET /chaos) and breakers (/health),
// deletes the faults (DELETE /chaos) and closes each breaker that is not
// closed (POST /breaker/close?name=). Resolves to a sentence of what it did.
async function calmService(svc) {
  const h = await readHealth(svc.base);
  if (!h) return `${svc.name}: not reachable`;
  const done = [];
  const faults = Object.keys((h.chaos && h.chaos.faults) || {});
  try {
    await admin(svc, 'DELETE', '/chaos');
    done.push(faults.length ? `cleared ${faults.map((k) => describeFault(svc.ui.chaos, k,
      h.chaos.faults[k])).join(', ')}` : 'no fault');
    showChaos(svc, { faults: {} }, true);
  } catch (e) {
    return `${svc.name}: ${e.message}`;
  }
  for (const b of h.breakers || []) {
    if (b.state === 'closed') continue;
    const label = breakerLabel(svc, b.name, b.label);
    try {
      const r = await admin(svc, 'POST', `/breaker/close?name=${encodeURIComponent(b.name)}`);
      done.push(`closed ${label} (was ${b.state})`);
      if (r && r.state) setPanelState(svc, panelFor(svc, b.name), r.state);
    } catch (e) {
      done.push(`${label} still ${b.state}: ${e.message}`);
    }
  }
  return `${svc.name}: ${done.join('; ')}`;
}

// The red button: calms every service of the page and says what it cleared.
function setupCalm(services) {
  const button = document.getElementById('calm');
  const msg = document.getElementById('calm-msg');
  button.addEventListener('click', async () => {
    if (!token()) {
      say(msg, 'type the admin token in the box first', false);
      msg.dataset.done = 'true';
      document.getElementById('token').focus();
      return;
    }
    msg.dataset.done = '';
    say(msg, 'calming…', true);
    const lines = await Promise.all(services.map(calmService));
    const ok = lines.every((l) => !/refused|failed|still|not reachable|rejected/.test(l));
    say(msg, lines.join(' · '), ok);
    msg.dataset.done = 'true';
  });
}

// Adds a card for svc (name, base) and starts its stream and /health reads.
function addService(services, svc) {
  const s = { ...svc, panels: new Map() };
  delete s.health;
  if (svc.health && svc.health.next && svc.health.next.name) s.nextName = svc.health.next.name;
  s.ui = buildCard(s);
  services.push(s);
  connect(s);
  poll(s);
  document.querySelector('h1 .sub').textContent = services.map((v) => v.name).join(' → ');
}

async function main() {
  document.getElementById('minutes').textContent = String(HISTORY_MS / 60000);
  setupToken();
  const services = [];
  window.dashboardServices = services;
  setupCalm(services);
  setupTraces(services);
  setInterval(() => services.forEach((svc) => {
    svc.panels.forEach((p) => { trimSamples(p); drawChart(p); });
    renderInForce(svc.ui.chaos);
  }), 1000);
  setInterval(() => services.forEach(poll), POLL_MS);
  const given = serviceParam();
  const from = document.getElementById('chain-from');
  if (given) {
    given.forEach((svc) => addService(services, svc));
    from.textContent = 'the services chosen with ?services=';
  } else if (await findChain((svc) => addService(services, svc))) {
    from.textContent = `the chain found from ${window.location.origin} (each /health's next hop)`;
  } else {
    defaultServices().forEach((svc) => addService(services, svc));
    from.textContent = "ports 3000-3002 of this host (this page's origin has no /health)";
  }
  document.body.dataset.chain = services.map((v) => `${v.name}@${v.base}`).join(',');
}

main();
