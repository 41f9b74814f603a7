// turnout's web console (DESIGN §9): plain JavaScript, no build step, no
// framework, no network but the admin address it was served from. Every
// API call goes through `api()` or `stream()` with the token in the
// Authorization header; the token lives in this tab's sessionStorage and
// never in a URL. EventSource cannot send a header, so the two SSE
// streams (events, metrics) are read with fetch.
'use strict';

const TOKEN_KEY = 'turnout.token';
// Release actions of progressive delivery (DESIGN §8): each a button of
// the release panel behind a confirmation, enabled in the states where the
// API takes it (elsewhere it answers 409 with a hint).
const PROGRESSIVE_ACTIONS = [
  { label: 'Promote', path: 'promote', states: ['progressing', 'paused'] },
  { label: 'Pause', path: 'pause', states: ['progressing'] },
  // A release paused until promoted waits for Promote, not Resume.
  { label: 'Resume', path: 'resume', states: ['paused'], when: (r) => r.paused !== 'until-promoted' },
  { label: 'Abort', path: 'abort', states: ['deploying', 'progressing', 'paused', 'pending-confirmation'] },
];
const POLL_MS = 2000;
// A metrics stream that says nothing for this long is taken as broken.
const METRICS_SILENCE_MS = 4000;
const IN_PROGRESS = ['deploying', 'progressing', 'paused', 'pending-confirmation'];

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') e.textContent = v;
    else if (k === 'class') e.className = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
};
const enc = encodeURIComponent;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  apps: [],
  app: null, // the selected app's name
  status: null,
  metrics: null,
  lastEventId: 0,
  online: true,
  offlineSince: null,
  dirty: new Set(), // routes whose weight inputs the user edited
  session: 0, // bumped at login and logout: stops the old session's loops
  streams: {},
  lastMetricsAt: 0,
  signatures: {},
  follow: null, // the instance log being followed: {id, ctl}
  streamPaths: {}, // what each stream last asked for (the tests read it)
  eventsRead: 0, // events read from the event stream since the app was chosen
};

// How many recent events the page shows: read once at login (the event
// stream's `last`), then followed live from the newest.
const RECENT_EVENTS = 50;
// The followed log keeps at most this many chunks (older ones drop).
const LOG_KEEP = 2000;

class ApiFailure extends Error {
  constructor(status, message, hint) {
    super(message);
    this.status = status;
    this.hint = hint;
  }
}

// ---- connection banner ------------------------------------------------

function setOnline(online, why) {
  const banner = $('#banner');
  document.body.dataset.connection = online ? 'online' : 'offline';
  if (online) {
    if (!state.online) {
      state.online = true;
      state.offlineSince = null;
      banner.hidden = true;
      banner.textContent = '';
      setActionsEnabled();
      // Whatever happened while we were away: read it again.
      refresh();
      refreshHistory();
    }
    return;
  }
  if (state.online) {
    state.online = false;
    state.offlineSince = new Date();
  }
  banner.hidden = false;
  banner.textContent =
    `Cannot reach the turnout server at ${location.host} since ` +
    `${state.offlineSince.toLocaleTimeString()} (${why}). ` +
    'What is shown is the last state read; retrying…';
  setActionsEnabled();
}

// ---- API --------------------------------------------------------------

async function api(method, path, body, { text = false } = {}) {
  const init = { method, headers: { Authorization: `Bearer ${state.token}` }, cache: 'no-store' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(path, init);
  } catch (e) {
    setOnline(false, 'the request failed');
    throw new ApiFailure(0, 'the server cannot be reached', 'wait for it to come back');
  }
  setOnline(true);
  if (r.status === 401) {
    const err = await errorOf(r);
    if (state.session > 0 && !loggingIn) logout(`The server refused the token: ${err.message}. Log in again.`);
    throw err;
  }
  if (!r.ok) throw await errorOf(r);
  if (text) return r.text();
  if (r.status === 204) return null;
  return r.json();
}

async function errorOf(r) {
  try {
    const body = await r.json();
    return new ApiFailure(r.status, body.error.message, body.error.hint);
  } catch (_) {
    return new ApiFailure(r.status, `HTTP ${r.status}`, '');
  }
}

// Reads a server-sent event stream with fetch until it ends, calling
// onEvent({event, data, id}) for each event. Resolves when the stream
// ends; rejects when it cannot be read.
async function readStream(path, signal, onOpen, onEvent) {
  const r = await fetch(path, {
    headers: { Authorization: `Bearer ${state.token}`, Accept: 'text/event-stream' },
    cache: 'no-store',
    signal,
  });
  if (r.status === 401) {
    const err = await errorOf(r);
    logout(`The server refused the token: ${err.message}. Log in again.`);
    throw err;
  }
  if (!r.ok) throw await errorOf(r);
  onOpen();
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const ev = { event: 'message', data: '', id: null };
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue; // a keep-alive comment
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const val = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') ev.event = val;
        else if (field === 'data') data.push(val);
        else if (field === 'id') ev.id = val;
      }
      if (data.length) {
        ev.data = data.join('\n');
        onEvent(ev);
      }
    }
  }
}

// Keeps a stream open for as long as this session and `key` last,
// reconnecting with a growing pause; a broken stream shows the banner.
function keepStreaming(key, path, onEvent) {
  stopStream(key);
  const session = state.session;
  const ctl = new AbortController();
  state.streams[key] = ctl;
  (async () => {
    let attempt = 0;
    while (session === state.session && !ctl.signal.aborted) {
      try {
        const p = path();
        state.streamPaths[key] = p;
        await readStream(p, ctl.signal, () => { attempt = 0; setOnline(true); }, onEvent);
        if (ctl.signal.aborted) return;
        setOnline(false, `the ${key} stream ended`);
      } catch (e) {
        if (ctl.signal.aborted) return;
        if (e instanceof ApiFailure && e.status === 404) return; // the app is gone
        if (e instanceof ApiFailure && e.status === 401) return;
        setOnline(false, `the ${key} stream broke`);
      }
      attempt += 1;
      await sleep(Math.min(5000, 250 * 2 ** attempt));
    }
  })();
}

function stopStream(key) {
  if (state.streams[key]) {
    state.streams[key].abort();
    delete state.streams[key];
  }
}

// ---- login ------------------------------------------------------------

let loggingIn = false;

async function login(token) {
  state.token = token;
  loggingIn = true;
  try {
    const list = await api('GET', '/v1/apps');
    sessionStorage.setItem(TOKEN_KEY, token);
    start(list);
  } catch (e) {
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    $('#login-error').textContent =
      e.status === 401 ? `Refused: ${e.message}. ${sentence(e.hint)}.` : `Cannot log in: ${e.message}`;
    $('#token').focus();
  } finally {
    loggingIn = false;
  }
}

function logout(message) {
  state.session += 1;
  stopFollowing('');
  for (const key of Object.keys(state.streams)) stopStream(key);
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  state.app = null;
  state.status = null;
  state.signatures = {};
  $('#console').hidden = true;
  $('#logout').hidden = true;
  $('#login').hidden = false;
  $('#login-error').textContent = message || '';
  $('#token').value = '';
  $('#token').focus();
}

function start(list) {
  state.session += 1;
  $('#login').hidden = true;
  $('#console').hidden = false;
  $('#logout').hidden = false;
  $('#login-error').textContent = '';
  state.apps = list.apps;
  if (!state.app && state.apps.length) selectApp(state.apps[0].app);
  renderAll();
  const session = state.session;
  (async () => {
    while (session === state.session) {
      await sleep(POLL_MS);
      if (session !== state.session) return;
      await refresh();
      if (state.app && state.online && Date.now() - state.lastMetricsAt > METRICS_SILENCE_MS) {
        // The metrics stream went quiet: reconnect it.
        streamMetrics();
      }
    }
  })();
}

// The selected app's events: the newest RECENT_EVENTS once, then live; a
// reconnect goes on after the last one seen, so nothing is shown twice.
function streamEvents() {
  const app = state.app;
  state.lastEventId = 0;
  state.eventsRead = 0;
  keepStreaming('event', () => (state.lastEventId
    ? `/v1/events/stream?app=${enc(app)}&after=${state.lastEventId}`
    : `/v1/events/stream?app=${enc(app)}&last=${RECENT_EVENTS}`), (ev) => {
    if (app !== state.app) return;
    const e = JSON.parse(ev.data);
    // Id 0: an analysis check repeating its verdict, sent live and never
    // stored; the release panel shows it, the list keeps stored events.
    if (e.id !== 0) {
      state.lastEventId = Math.max(state.lastEventId, e.id);
      state.eventsRead += 1;
      addEvent(e);
    }
    soon();
  });
}

// Reads the status and the history again shortly, once for a burst of
// events (the replay at login is one burst).
let soonTimer = null;
function soon() {
  if (soonTimer) return;
  soonTimer = setTimeout(() => {
    soonTimer = null;
    refresh();
    refreshHistory();
  }, 100);
}

function selectApp(name) {
  state.app = name;
  state.metrics = null;
  state.dirty.clear();
  state.signatures = {};
  state.lastMetricsAt = Date.now();
  $('#events').replaceChildren();
  stopFollowing('');
  $('#log').textContent = '';
  streamMetrics();
  streamEvents();
  refreshHistory();
  renderAll();
}

function streamMetrics() {
  state.lastMetricsAt = Date.now();
  const app = state.app;
  keepStreaming('metrics', () => `/v1/apps/${enc(app)}/metrics/stream`, (ev) => {
    if (ev.event !== 'metrics' || app !== state.app) return;
    state.lastMetricsAt = Date.now();
    state.metrics = JSON.parse(ev.data);
    renderMetrics();
  });
}

// ---- reading ----------------------------------------------------------

let refreshing = null;

function refresh() {
  if (!state.token) return Promise.resolve();
  if (refreshing) return refreshing;
  refreshing = (async () => {
    try {
      const list = await api('GET', '/v1/apps');
      state.apps = list.apps;
      if (state.app && !state.apps.some((a) => a.app === state.app)) state.app = null;
      if (!state.app && state.apps.length) selectApp(state.apps[0].app);
      renderAll();
    } catch (_) {
      // The banner says it.
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

// The releases of the history (its events come from the event stream).
async function refreshHistory() {
  const app = state.app;
  if (!app || !state.token) return;
  try {
    const releases = await api('GET', `/v1/apps/${enc(app)}/releases`);
    if (app !== state.app) return;
    renderHistory(releases.releases);
  } catch (_) {
    // The banner says it.
  }
}

// ---- rendering --------------------------------------------------------

function current() {
  return state.apps.find((a) => a.app === state.app) || null;
}

function renderAll() {
  renderApps();
  const s = current();
  state.status = s;
  $('#app-view').hidden = !s;
  if (!s) return;
  $('#app-title').textContent = `App ${s.app} · template version ${s.template_version}`;
  renderRelease(s);
  renderServices(s);
  renderRoutes(s);
  renderLogChoices(s);
  renderMetrics();
}

function changed(key, value) {
  const sig = JSON.stringify(value);
  if (state.signatures[key] === sig) return false;
  state.signatures[key] = sig;
  return true;
}

function renderApps() {
  if (!changed('apps', [state.app, state.apps.map((a) => [a.app, a.release])])) return;
  const ul = $('#apps');
  const focused = document.activeElement && document.activeElement.dataset.app;
  ul.replaceChildren(
    ...state.apps.map((a) => {
      const release = a.release
        ? `release ${a.release.id}: ${a.release.state}`
        : 'no release yet';
      const b = el('button', {
        type: 'button',
        'data-app': a.app,
        'aria-current': a.app === state.app ? 'true' : 'false',
      }, el('strong', { text: a.app }), el('br'), el('span', { class: 'muted', text: release }));
      b.addEventListener('click', () => selectApp(a.app));
      return el('li', {}, b);
    }),
  );
  if (focused) {
    const again = $(`[data-app="${CSS.escape(focused)}"]`, ul);
    if (again) again.focus();
  }
  if (!state.apps.length) ul.append(el('li', { class: 'muted', text: 'No apps: deploy one with `turnout deploy FILE`.' }));
}

// Why a paused release waits, and what moves it on (DESIGN §8).
const PAUSED = {
  manual: 'paused by the operator: Resume or Promote moves it on',
  inconclusive: 'the analysis could not judge its last window (too little traffic): '
    + 'the first passing window resumes it, or Promote',
  'until-promoted': 'waits at this step until promoted: Promote moves it on',
};
// A verdict in words: colour is never the only signal.
const VERDICT = { pass: 'pass', fail: 'fail', inconclusive: 'inconclusive' };
// How many of the newest analysis checks the panel lists.
const CHECKS_SHOWN = 5;

function renderRelease(s) {
  const r = s.release;
  const facts = $('#release-facts');
  const shown = r && { ...r, analysis: undefined };
  if (changed('release', shown)) {
    facts.replaceChildren();
    const fact = (k, v, name) => facts.append(el('dt', { text: k }), el('dd', { text: v, 'data-fact': name }));
    if (!r) {
      fact('State', 'no release yet', 'state');
    } else {
      fact('State', r.state, 'state');
      fact('Release', `${r.id} (${r.strategy})`, 'id');
      fact('Versions', `${r.from_version} → ${r.to_version}`, 'versions');
      if (r.reason) fact('Reason', r.reason, 'reason');
      if (r.step) fact('Step', `${r.step.index + 1} of ${r.step.count}: the new version at ${r.step.share}%`, 'step');
      if (r.paused) fact('Paused', PAUSED[r.paused] ? `${r.paused}: ${PAUSED[r.paused]}` : r.paused, 'paused');
    }
  }
  const extra = $('#progressive-actions');
  if (!extra.children.length) {
    // Made once: re-making them would take the keyboard focus away.
    extra.replaceChildren(
      ...PROGRESSIVE_ACTIONS.map((a) => {
        const b = el('button', { type: 'button', 'data-action': a.label, 'data-path': a.path, text: a.label });
        b.addEventListener('click', () => releaseAction(a.label, a.path));
        return b;
      }),
    );
  }
  renderAnalysis(r ? r.analysis || [] : []);
  setActionsEnabled();
}

function figuresText(f) {
  if (!f || !f.requests) return 'no requests';
  const parts = [`${f.requests} requests`];
  if (f.error_rate !== null && f.error_rate !== undefined) parts.push(`${fmt(100 * f.error_rate)} % errors`);
  if (f.p99_ms !== null && f.p99_ms !== undefined) parts.push(`p99 ${fmt(f.p99_ms)} ms`);
  return parts.join(', ');
}

// The newest analysis checks, newest first, each verdict in words.
function renderAnalysis(checks) {
  const box = $('#analysis');
  if (!changed('analysis', checks)) return;
  box.hidden = !checks.length;
  const latest = checks[checks.length - 1];
  $('#analysis-latest').textContent = latest
    ? `Latest check: ${VERDICT[latest.verdict] || latest.verdict}` +
      (latest.reasons.length ? ` (${latest.reasons.join('; ')})` : '') +
      ` · ${checks.length} check${checks.length === 1 ? '' : 's'} so far`
    : '';
  $('#analysis tbody').replaceChildren(
    ...checks.slice(-CHECKS_SHOWN).reverse().map((c) => el('tr', { 'data-check': String(c.at) },
      el('td', { text: when(c.at) }),
      el('td', {}, el('span', { class: `verdict verdict-${c.verdict}`, 'data-verdict': c.verdict, text: VERDICT[c.verdict] || c.verdict })),
      el('td', { text: figuresText(c.new) }),
      el('td', { text: figuresText(c.baseline) }),
      el('td', { text: c.reasons.join('; ') || '–' }))),
  );
}

function setActionsEnabled() {
  const r = state.status && state.status.release;
  const st = r ? r.state : null;
  $('#confirm').disabled = !state.online || st !== 'pending-confirmation';
  $('#rollback').disabled = !state.online || !IN_PROGRESS.includes(st);
  for (const b of document.querySelectorAll('#progressive-actions button')) {
    const a = PROGRESSIVE_ACTIONS.find((x) => x.path === b.dataset.path);
    b.disabled = !state.online || !(a && a.states.includes(st) && (!a.when || a.when(r)));
  }
  $('#release-start').disabled = !state.online || IN_PROGRESS.includes(st);
  for (const b of document.querySelectorAll('.route button')) b.disabled = !state.online;
}

function roleClass(role) {
  return ['old', 'new', 'unchanged', 'changed'].includes(role) ? `role-${role}` : '';
}

function renderServices(s) {
  const box = $('#services');
  if (!changed('services', s.services)) return;
  box.replaceChildren(
    ...s.services.map((svc) => {
      const cls = roleClass(svc.role);
      const healthy = svc.instances.filter((i) => i.state === 'ready').length;
      const colour = svc.color && svc.color !== 'default' ? ` (${svc.color})` : '';
      return el('article', {
        class: `card ${cls}`,
        'data-service': svc.name,
        'data-role': svc.role,
        'aria-label': `service ${svc.name}, ${svc.role}`,
      },
      el('h4', {}, el('span', { text: svc.name }), el('span', { class: `role ${cls}`, 'data-role-label': '', text: svc.role + colour })),
      el('p', { 'data-health': '', text: `${svc.ready} of ${svc.scale} instances ready` + (healthy < svc.instances.length ? `, ${svc.instances.length - healthy} not ready` : '') }),
      el('div', { class: 'figures' },
        el('div', {}, el('span', { text: 'requests/s' }), el('span', { 'data-m': 'rps', text: '–' })),
        el('div', {}, el('span', { text: 'errors' }), el('span', { 'data-m': 'errors', text: '–' })),
        el('div', {}, el('span', { text: 'p99' }), el('span', { 'data-m': 'p99', text: '–' }))),
      el('ul', { class: 'instances', 'aria-label': `instances of ${svc.name}` },
        ...svc.instances.map((i) => el('li', {},
          `${i.id} `, el('span', { class: `state-${i.state}`, text: i.state }),
          i.endpoint ? el('span', { class: 'muted', text: ` ${i.endpoint}` }) : null,
          i.restarts ? el('span', { class: 'muted', text: ` (restarted ${i.restarts}×)` }) : null))));
    }),
  );
}

function roleOf(s, name) {
  const svc = s.services.find((x) => x.name === name);
  return svc ? svc.role : 'unknown';
}

function renderRoutes(s) {
  const box = $('#routes');
  if (!s.routes.length) {
    if (changed('routes', [])) box.replaceChildren(el('p', { class: 'muted', text: 'This app has no routes.' }));
    return;
  }
  if (!changed('routes', [s.routes.map((r) => r.id), s.services.map((x) => [x.name, x.role])])) {
    // Same routes: bring the weights up to date where the user is not editing.
    for (const r of s.routes) updateRouteWeights(r);
    return;
  }
  box.replaceChildren(...s.routes.map((r) => routeView(s, r)));
  for (const r of s.routes) updateRouteWeights(r);
  setActionsEnabled();
}

function routeView(s, r) {
  const services = r.order && r.order.length ? r.order : Object.keys(r.weights);
  const form = el('form', { 'data-route': r.id, 'aria-label': `weights of route ${r.id}` });
  const rows = services.map((name) => {
    const cls = roleClass(roleOf(s, name));
    const input = el('input', {
      type: 'number', min: '0', max: '100', step: '1', required: true,
      'data-service': name,
      'aria-label': `weight of ${name} on ${r.id}`,
    });
    input.addEventListener('input', () => state.dirty.add(r.id));
    return el('tr', { 'data-service': name },
      el('th', { scope: 'row', text: name }),
      el('td', {}, el('span', { class: `role ${cls}`, text: roleOf(s, name) })),
      el('td', {}, input),
      el('td', { 'data-m': 'wshare', text: '' }),
      el('td', { 'data-m': 'rps', text: '–' }),
      el('td', {}, el('span', { class: `share-bar ${cls}`, 'data-m': 'bar' }), ' ',
        el('span', { 'data-m': 'share', text: '–' })));
  });
  form.append(
    el('table', {},
      el('thead', {}, el('tr', {},
        ...['Service', 'Role', 'Weight', 'Share by weight', 'Live requests/s', 'Live share'].map((h) => el('th', { scope: 'col', text: h })))),
      el('tbody', {}, ...rows)),
  );
  const apply = el('button', { type: 'submit', 'data-do': 'apply', text: 'Apply' });
  const reset = el('button', { type: 'button', 'data-do': 'reset', text: 'Reset' });
  reset.addEventListener('click', () => { state.dirty.delete(r.id); updateRouteWeights(currentRoute(r.id)); });
  const actions = el('div', { class: 'actions' }, apply, reset);
  if (services.length === 2) {
    const sw = el('button', { type: 'button', 'data-do': 'switch', text: 'Switch' });
    sw.addEventListener('click', () => switchRoute(r.id));
    actions.append(sw);
  }
  form.append(actions, el('p', { role: 'status', class: 'muted', 'data-m': 'route-msg' }));
  form.addEventListener('submit', (e) => { e.preventDefault(); applyWeights(r.id, form); });
  return el('div', { class: 'route', 'data-route': r.id },
    el('h4', {}, `${r.id} `, el('span', { class: 'muted', text: `${r.internal ? 'internal' : 'public'} · sticky: ${r.sticky || 'off'}` })),
    form);
}

function currentRoute(id) {
  return state.status && state.status.routes.find((r) => r.id === id);
}

function updateRouteWeights(r) {
  if (!r) return;
  const form = $(`form[data-route="${CSS.escape(r.id)}"]`);
  if (!form) return;
  const total = Object.values(r.weights).reduce((a, b) => a + b, 0);
  for (const row of form.querySelectorAll('tbody tr')) {
    const name = row.dataset.service;
    const w = r.weights[name] ?? 0;
    const input = $('input', row);
    // Written only when it differs: an unchanged weight costs no layout.
    if (!state.dirty.has(r.id) && input.value !== String(w)) input.value = String(w);
    put(figureNodes(row).wshare, total ? `${Math.round((100 * w) / total)} %` : '–');
  }
}

function fmt(n, digits = 1) {
  return Number.isFinite(n) ? n.toFixed(digits) : '–';
}

// Metrics come once a second for every service: they are painted in the
// next animation frame (one paint for whatever arrived before it), and a
// figure's text is written only when it changed, so that 200 services
// updating leave the page free to answer input.
let metricsFrame = 0;
function renderMetrics() {
  if (!metricsFrame) metricsFrame = requestAnimationFrame(paintMetrics);
}

function put(node, text, value) {
  if (!node) return;
  if (node.textContent !== text) node.textContent = text;
  if (value !== undefined && node.dataset.value !== value) node.dataset.value = value;
}

// The figure nodes of a card or a route row, found once per element.
function figureNodes(e) {
  if (!e.figures) {
    e.figures = {};
    for (const n of e.querySelectorAll('[data-m]')) e.figures[n.dataset.m] = n;
  }
  return e.figures;
}

function paintMetrics() {
  metricsFrame = 0;
  const m = state.metrics;
  const byService = new Map((m ? m.services : []).map((x) => [x.service, x]));
  for (const card of document.querySelectorAll('#services .card')) {
    const f = byService.get(card.dataset.service);
    const n = figureNodes(card);
    put(n.rps, f ? fmt(f.requests_per_second) : '–', f ? String(f.requests_per_second) : '');
    put(n.errors, f && f.error_rate !== null ? `${fmt(100 * f.error_rate)} %` : '–');
    put(n.p99, f && f.p99_ms !== null ? `${fmt(f.p99_ms)} ms` : '–');
  }
  const byRoute = new Map();
  for (const x of m ? m.routes : []) {
    if (!byRoute.has(x.route)) byRoute.set(x.route, { total: 0, services: new Map() });
    const r = byRoute.get(x.route);
    r.total += x.requests;
    r.services.set(x.service, x);
  }
  for (const form of document.querySelectorAll('#routes form[data-route]')) {
    const route = byRoute.get(form.dataset.route);
    for (const row of form.querySelectorAll('tbody tr')) {
      const f = route && route.services.get(row.dataset.service);
      const n = figureNodes(row);
      put(n.rps, f ? fmt(f.requests_per_second) : '–', f ? String(f.requests_per_second) : '');
      const share = route && route.total && f ? (100 * f.requests) / route.total : null;
      put(n.share, share === null ? '–' : `${Math.round(share)} %`, share === null ? '' : String(share));
      const width = `${share === null ? 0 : share / 10}em`;
      if (n.bar && n.bar.style.width !== width) n.bar.style.width = width;
    }
  }
}

function renderHistory(releases) {
  $('#history tbody').replaceChildren(
    ...(releases.length
      ? releases.map((r) => el('tr', { 'data-release': String(r.id) },
        el('td', { text: String(r.id) }),
        el('td', { text: r.strategy }),
        el('td', { text: `${r.from_version} → ${r.to_version}` }),
        el('td', { 'data-state': '', text: r.state }),
        el('td', { text: r.reason || '' }),
        el('td', { text: when(r.updated_at) })))
      : [el('tr', {}, el('td', { colspan: '6', class: 'muted', text: 'No release yet.' }))]),
  );
}

function when(t) {
  if (t === null || t === undefined) return '';
  const d = typeof t === 'number' ? new Date(t) : new Date(String(t));
  return Number.isNaN(d.getTime()) ? String(t) : d.toLocaleString();
}

function addEvent(e) {
  const list = $('#events');
  if (list.querySelector(`[data-event="${e.id}"]`)) return;
  list.append(el('li', { 'data-event': String(e.id) }, el('span', { class: 'muted', text: `${when(e.at)} ` }),
    el('strong', { text: e.kind }), ` ${e.message}`));
  while (list.children.length > RECENT_EVENTS) list.firstElementChild.remove();
  list.scrollTop = list.scrollHeight;
}

function renderLogChoices(s) {
  const ids = s.services.flatMap((x) => x.instances.map((i) => i.id));
  if (!changed('log-choices', ids)) return;
  const select = $('#log-instance');
  const was = select.value;
  select.replaceChildren(...ids.map((id) => el('option', { value: id, text: id })));
  if (ids.includes(was)) select.value = was;
  $('#log-show').disabled = !ids.length;
  $('#log-follow').disabled = !ids.length;
}

// ---- actions ----------------------------------------------------------

// A <dialog> whose accept button names the action; resolves true on it.
function ask(action, text) {
  const dialog = $('#ask');
  $('#ask-title').textContent = `${action}?`;
  $('#ask-text').textContent = text;
  $('#ask-ok').textContent = action;
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.showModal();
    $('#ask-cancel').focus();
  });
}

function say(target, text, error = false) {
  target.textContent = text;
  target.classList.toggle('error', error);
}

function failure(e) {
  return e.hint ? `${e.message} (${e.hint})` : e.message;
}

// The API's messages are lowercase clauses; a sentence starts upper case.
function sentence(text) {
  return text ? text[0].toUpperCase() + text.slice(1) : '';
}

async function releaseAction(label, path) {
  const app = state.app;
  const r = state.status && state.status.release;
  if (!r) return;
  const what = {
    confirm: `Confirm release ${r.id} of ${app}: the old services are drained and removed.`,
    rollback: `Roll back release ${r.id} of ${app}: the new services are removed and the weights restored.`,
    promote: `Promote release ${r.id} of ${app} to its next step now.`,
    pause: `Pause release ${r.id} of ${app} at its step.`,
    resume: `Resume release ${r.id} of ${app}: its step's pause counts from now.`,
    abort: `Abort release ${r.id} of ${app}: it is rolled back, recorded as aborted.`,
  }[path] || `${label} release ${r.id} of ${app}.`;
  if (!(await ask(label, what))) return;
  const msg = $('#release-message');
  try {
    await api('POST', `/v1/apps/${enc(app)}/${path}`, {});
    say(msg, `${label}: done.`);
  } catch (e) {
    say(msg, `${label} refused: ${failure(e)}`, true);
  }
  await refresh();
  refreshHistory();
}

async function applyWeights(route, form) {
  const msg = $('[data-m="route-msg"]', form);
  const weights = {};
  for (const input of form.querySelectorAll('input[data-service]')) {
    const v = input.value.trim();
    if (!/^\d+$/.test(v) || Number(v) > 100) {
      say(msg, `The weight of ${input.dataset.service} must be a whole number from 0 to 100.`, true);
      input.focus();
      return;
    }
    weights[input.dataset.service] = Number(v);
  }
  try {
    await api('PUT', `/v1/apps/${enc(state.app)}/routes/${enc(route)}/weights`, { weights });
    state.dirty.delete(route);
    say(msg, `Applied: ${Object.entries(weights).map(([k, v]) => `${k}=${v}`).join(', ')}.`);
  } catch (e) {
    say(msg, `Refused: ${failure(e)}`, true);
  }
  await refresh();
}

async function switchRoute(route) {
  const form = $(`form[data-route="${CSS.escape(route)}"]`);
  const msg = $('[data-m="route-msg"]', form);
  if (!(await ask('Switch', `Switch route ${route}: all of its traffic moves to the other service.`))) return;
  try {
    await api('POST', `/v1/apps/${enc(state.app)}/routes/${enc(route)}/switch`, {});
    state.dirty.delete(route);
    say(msg, 'Switched.');
  } catch (e) {
    say(msg, `Switch refused: ${failure(e)}`, true);
  }
  await refresh();
}

async function startRelease(e) {
  e.preventDefault();
  const msg = $('#release-message');
  const template = $('#release-template').value;
  const strategy = $('#release-strategy').value;
  if (!(await ask('Start release', `Start a ${strategy} release of ${state.app} with this template.`))) return;
  try {
    await api('POST', `/v1/apps/${enc(state.app)}/releases`, { template, strategy, source_name: 'console.yaml' });
    say(msg, 'Release started.');
    $('#release-new').open = false;
  } catch (err) {
    say(msg, `Release refused: ${failure(err)}`, true);
  }
  await refresh();
  refreshHistory();
}

async function showLog() {
  const id = $('#log-instance').value;
  if (!id) return;
  stopFollowing('');
  try {
    $('#log').textContent = await api('GET', `/v1/apps/${enc(state.app)}/instances/${enc(id)}/logs?tail=100`, undefined, { text: true }) || '(empty)';
  } catch (e) {
    $('#log').textContent = `Cannot read the log: ${failure(e)}`;
  }
}

// Follows an instance's log live (`follow=true`: the tail, then each line
// as it is written) until stopped, another instance or app is chosen, or
// the log ends.
async function followLog() {
  if (state.follow) {
    stopFollowing(`Stopped following ${state.follow.id}.`);
    return;
  }
  const id = $('#log-instance').value;
  if (!id) return;
  const app = state.app;
  const ctl = new AbortController();
  state.follow = { id, ctl };
  const button = $('#log-follow');
  button.setAttribute('aria-pressed', 'true');
  button.textContent = 'Stop following';
  $('#log-status').textContent = `Following ${id} live.`;
  const pre = $('#log');
  pre.textContent = '';
  const mine = () => state.follow && state.follow.ctl === ctl;
  try {
    const r = await fetch(`/v1/apps/${enc(app)}/instances/${enc(id)}/logs?tail=100&follow=true`, {
      headers: { Authorization: `Bearer ${state.token}` },
      cache: 'no-store',
      signal: ctl.signal,
    });
    if (!r.ok) throw await errorOf(r);
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      appendLog(pre, value);
    }
    if (mine()) stopFollowing(`The log of ${id} ended: the instance stopped or the server went away.`);
  } catch (e) {
    if (mine()) stopFollowing(`Cannot follow the log of ${id}: ${failure(e)}`);
  }
}

function appendLog(pre, text) {
  const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  pre.append(text);
  while (pre.childNodes.length > LOG_KEEP) pre.firstChild.remove();
  if (atEnd) pre.scrollTop = pre.scrollHeight;
}

function stopFollowing(message) {
  if (state.follow) {
    state.follow.ctl.abort();
    state.follow = null;
  }
  const button = $('#log-follow');
  button.setAttribute('aria-pressed', 'false');
  button.textContent = 'Follow live';
  $('#log-status').textContent = message;
}

// ---- wiring -----------------------------------------------------------

document.addEventListener('DOMContentLoaded', () => {
  $('#server').textContent = location.host;
  $('#login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    login($('#token').value.trim());
  });
  $('#logout').addEventListener('click', () => logout('Logged out.'));
  $('#confirm').addEventListener('click', () => releaseAction('Confirm', 'confirm'));
  $('#rollback').addEventListener('click', () => releaseAction('Roll back', 'rollback'));
  $('#release-form').addEventListener('submit', startRelease);
  $('#release-file').addEventListener('change', async (e) => {
    const file = e.target.files[0];
    if (file) $('#release-template').value = await file.text();
  });
  $('#log-show').addEventListener('click', showLog);
  $('#log-follow').addEventListener('click', followLog);
  $('#log-instance').addEventListener('change', () => {
    if (state.follow) stopFollowing(`Stopped following ${state.follow.id}: another instance was chosen.`);
  });
  document.body.dataset.connection = 'online';
  if (state.token) login(state.token);
  else $('#token').focus();
});
