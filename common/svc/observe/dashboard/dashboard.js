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
  li.append(el('span', 't', clock(ev.time)), document.createTextNode(eventText(svc, ev, 1, ev.time)));
  return li;
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
