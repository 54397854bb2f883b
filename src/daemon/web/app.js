// The daemon's web page: the runs, their live progress, the uploaded logs, reports and
// downloads, all read from the /v1 API. No framework and no build step: the daemon serves this
// file as it is.
//
// Two rules hold throughout. The token lives in this tab's sessionStorage and travels only in an
// Authorization header, never in a URL (URLs end up in logs and history), so everything that
// needs it, the event streams and the downloads included, goes through fetch(). And what the
// API answers is put into the page with textContent, never as markup.

const TOKEN_KEY = 'sluice.token';
// A browser opens at most six HTTP/1.1 connections to one host, and each followed run holds
// one: the rest of the running runs are refreshed by the list, so the page never starves.
const MAX_STREAMS = 3;
// How often the list is read again: it catches runs other clients submitted or deleted.
const LIST_EVERY_MS = 5000;
// The live charts keep this many seconds of one-second snapshots.
const MAX_POINTS = 900;
const FINISHED = new Set(['completed', 'stopped', 'failed', 'interrupted']);

const $ = (selector) => document.querySelector(selector);

const runs = new Map();      // id → the run as the API last showed it
const rows = new Map();      // id → its <tr>
const history = new Map();   // id → [{t, sent, planned, p50, p99, errors, s5xx}]
const streams = new Map();   // id → AbortController of its event stream
let selected = null;         // the run the charts show
let reportUrl = null;        // the object URL of the report shown, freed when replaced

// ---- talking to the API ----------------------------------------------------------------------

class Unauthorized extends Error {}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

async function api(path, options = {}) {
  const headers = new Headers(options.headers);
  const t = token();
  if (t) headers.set('Authorization', `Bearer ${t}`);
  const response = await fetch(path, { ...options, headers, cache: 'no-store' });
  if (response.ok) return response;
  const detail = await problemDetail(response);
  if (response.status === 401) throw new Unauthorized(detail);
  throw new Error(detail);
}

// The API answers errors as problem+json (RFC 9457); its `detail` says what to do.
async function problemDetail(response) {
  try {
    const problem = await response.json();
    if (problem && typeof problem.detail === 'string') return problem.detail;
  } catch { /* not JSON: say what the status was */ }
  return `${response.status} ${response.statusText}`;
}

async function apiJson(path, options) {
  return (await api(path, options)).json();
}

// Every action ends here: a refused token brings the token form back, anything else is said
// in the status line.
function report(error) {
  if (error instanceof Unauthorized) {
    showLogin(error.message);
  } else if (error.name !== 'AbortError') {
    say(error.message, true);
  }
}

function say(text, isError = false) {
  const status = $('#status');
  status.textContent = text;
  status.classList.toggle('error', isError);
}

// ---- the token -------------------------------------------------------------------------------

function showLogin(detail = '') {
  // A refused token is an error, said in the daemon's words; being asked for one the first time
  // is not (the form's heading says it).
  const refused = token() !== null;
  sessionStorage.removeItem(TOKEN_KEY);
  for (const controller of streams.values()) controller.abort();
  streams.clear();
  $('#app').hidden = true;
  $('#login').hidden = false;
  $('#forget-token').hidden = true;
  $('#connection').textContent = 'not connected';
  say(refused ? detail : '', refused);
  $('#token').focus();
}

$('#login-form').addEventListener('submit', (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $('#token').value.trim());
  $('#token').value = '';
  start();
});

$('#forget-token').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  showLogin();
  say('Token forgotten.');
});

// ---- the runs list ---------------------------------------------------------------------------

async function refresh() {
  const [list, logs] = await Promise.all([apiJson('/v1/runs'), apiJson('/v1/logs')]);
  $('#app').hidden = false;
  $('#login').hidden = true;
  $('#forget-token').hidden = !token();
  $('#connection').textContent = token() ? 'connected with a token' : 'connected (this daemon needs no token)';
  const seen = new Set();
  for (const run of list) {
    seen.add(run.id);
    update(run);
  }
  for (const id of [...runs.keys()].filter((id) => !seen.has(id))) forget(id);
  // The API lists the newest first; append() moves existing rows without rebuilding them.
  const body = $('#runs tbody');
  for (const run of list) body.append(rows.get(run.id));
  $('#no-runs').hidden = list.length > 0;
  if (!selected || !runs.has(selected)) {
    select((list.find((r) => !FINISHED.has(r.state)) || list[0] || {}).id || null);
  }
  followActiveRuns();
  showLogs(logs);
}

// How far along a run is: a view of it that is less far along than the one shown is older.
const STAGE = { scheduled: 0, queued: 1, running: 2, stopping: 3 };
const stage = (run) => STAGE[run.state] ?? 4;

// Takes a run's newer view: its row, its history, the charts if it is the one shown. The list
// and the event stream both bring views, and a list answer may arrive after a newer event: the
// older view is dropped, so figures on the page never go back.
function update(run) {
  const before = runs.get(run.id);
  if (before && (stage(run) < stage(before) ||
      (stage(run) === stage(before) && (run.progress?.elapsed_seconds ?? 0) < (before.progress?.elapsed_seconds ?? 0)))) {
    return;
  }
  runs.set(run.id, run);
  if (run.progress && run.state === 'running') remember(run);
  let row = rows.get(run.id);
  if (!row) {
    row = document.createElement('tr');
    for (let i = 0; i < 10; i++) row.append(document.createElement('td'));
    row.addEventListener('click', (event) => {
      if (!event.target.closest('button')) select(run.id);
    });
    rows.set(run.id, row);
    $('#runs tbody').prepend(row);
  }
  fillRow(row, run);
  // The buttons change with the state only: rebuilding them every second would swallow clicks.
  if (!before || before.state !== run.state) fillActions(row.cells[9], run);
  if (run.id === selected) showLive();
}

function fillRow(row, run) {
  const p = run.progress || {};
  const cells = row.cells;
  row.dataset.id = run.id;
  row.dataset.state = run.state;
  row.classList.toggle('selected', run.id === selected);
  cells[0].textContent = run.id;
  cells[1].textContent = run.state;
  cells[1].className = `state ${run.state}`;
  cells[1].title = run.message || '';
  cells[2].textContent = run.options && run.options.target || '';
  cells[3].textContent = count(p.sent);
  cells[4].textContent = count(p.completed);
  cells[5].textContent = count(p.errors);
  cells[6].textContent = run.state === 'running' ? number(p.current_rate) : '';
  cells[7].textContent = number(p.p99_ms);
  cells[8].textContent = p.elapsed_seconds != null ? seconds(p.elapsed_seconds) : '';
  for (const i of [3, 4, 5, 6, 7]) cells[i].className = 'num';
  cells[3].classList.add('sent');
}

function fillActions(cell, run) {
  const buttons = [];
  const button = (label, action, className) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = label;
    if (className) b.className = className;
    b.addEventListener('click', () => action().catch(report));
    buttons.push(b);
  };
  if (['queued', 'scheduled', 'running'].includes(run.state)) {
    button('Stop', () => stopRun(run.id), 'danger');
  }
  if (FINISHED.has(run.state)) {
    button('Report', () => openReport(run.id));
    button('CSV', () => download(`/v1/runs/${run.id}/results.csv`, `sluice-${run.id}.csv`));
    button('XLSX', () => download(`/v1/runs/${run.id}/results.xlsx`, `sluice-${run.id}.xlsx`));
    button('Summary', () => download(`/v1/runs/${run.id}/summary.json`, `sluice-${run.id}-summary.json`));
    button('Delete', () => deleteRun(run.id), 'danger');
  }
  cell.className = 'actions';
  cell.replaceChildren(...buttons);
}

function forget(id) {
  runs.delete(id);
  history.delete(id);
  const row = rows.get(id);
  if (row) row.remove();
  rows.delete(id);
  if (streams.has(id)) streams.get(id).abort();
  if (selected === id) select(null);
}

// ---- following runs live ---------------------------------------------------------------------

function followActiveRuns() {
  // Running runs, the selected one first so its chart is fed by a stream when there are more
  // than enough; a waiting run only when selected (a soak test scheduled for the night would
  // hold a connection for hours), the list's refresh shows it start.
  const active = [...runs.values()].filter((r) => ['running', 'stopping'].includes(r.state) ||
    (r.id === selected && !FINISHED.has(r.state)));
  active.sort((a, b) => (b.id === selected) - (a.id === selected));
  for (const run of active) {
    if (streams.size >= MAX_STREAMS) break;
    if (!streams.has(run.id)) follow(run.id);
  }
}

// GET /v1/runs/{id}/events is server-sent events. EventSource cannot send a header, so the
// stream is read with fetch: blocks end at a blank line, each with `event:` and `data:` lines.
async function follow(id) {
  const controller = new AbortController();
  streams.set(id, controller);
  try {
    const response = await api(`/v1/runs/${id}/events`, { signal: controller.signal });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value.replaceAll('\r\n', '\n');
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart());
        // Keep-alive comments carry no data.
        if (data.length) update(JSON.parse(data.join('\n')));
      }
    }
  } catch (error) {
    report(error);
  } finally {
    if (streams.get(id) === controller) streams.delete(id);
  }
  // The stream ended with the run (or broke off): the list says what became of it, and hands
  // the free connection to another running run.
  // A second's pause keeps a stream that keeps failing from becoming a busy loop.
  if (!controller.signal.aborted) setTimeout(() => refresh().catch(report), 1000);
}

function remember(run) {
  const p = run.progress;
  const points = history.get(run.id) || [];
  const last = points[points.length - 1];
  if (last && p.elapsed_seconds <= last.t) return; // the list and the stream show the same moment
  const classes = p.classes || {};
  points.push({
    t: p.elapsed_seconds,
    sent: p.sent,
    planned: p.planned_rate,
    p50: p.p50_ms,
    p99: p.p99_ms,
    errors: p.errors,
    s5xx: classes['5xx'] || 0,
  });
  if (points.length > MAX_POINTS) points.shift();
  history.set(run.id, points);
}

// ---- the charts ------------------------------------------------------------------------------

function select(id) {
  selected = id;
  for (const [rowId, row] of rows) row.classList.toggle('selected', rowId === id);
  showLive();
  followActiveRuns();
}

function showLive() {
  const run = selected && runs.get(selected);
  $('#live').hidden = !run;
  if (!run) return;
  $('#live-id').textContent = run.id;
  $('#live-state').textContent = run.state;
  $('#live-state').className = `state ${run.state}`;
  const points = history.get(run.id) || [];
  const p = run.progress || {};
  let note = '';
  if (points.length < 2) {
    note = FINISHED.has(run.state)
      ? 'This run ended before this page followed it: its report has the whole run.'
      : 'Waiting for the run to send; the charts fill in every second.';
  } else {
    note = `${count(p.sent)} sent, ${count(p.completed)} answered, ${count(p.errors)} without an answer, ` +
      `p50 ${number(p.p50_ms)} ms, p99 ${number(p.p99_ms)} ms, after ${seconds(p.elapsed_seconds)}`;
  }
  if (run.message) note += ` — ${run.message}`;
  $('#live-note').textContent = note;

  // Rates from the growth of a total between two snapshots, drawn halfway between them: that
  // is the moment they describe (the plan's rate is the one due at each snapshot).
  const perSecond = (key) => points.slice(1).map((q, i) => {
    const p0 = points[i];
    return [(p0.t + q.t) / 2, Math.max(0, q[key] - p0[key]) / Math.max(q.t - p0.t, 1e-3)];
  });
  const series = (key) => points.filter((q) => q[key] != null).map((q) => [q.t, q[key]]);
  drawChart($('#chart-rate'), [['planned', series('planned')], ['achieved', perSecond('sent')]]);
  drawChart($('#chart-latency'), [['p50', series('p50')], ['p99', series('p99')]]);
  drawChart($('#chart-errors'), [['errors', perSecond('errors')], ['s5xx', perSecond('s5xx')]]);
}

const SVG = 'http://www.w3.org/2000/svg';
const PLOT = { left: 48, right: 452, top: 10, bottom: 156 };

function svg(name, attributes, text) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (text != null) element.textContent = text;
  return element;
}

// A line per series over elapsed seconds, y from 0 to a round number above the highest point.
function drawChart(target, series) {
  const all = series.flatMap(([, points]) => points);
  const parts = [];
  if (all.length >= 2) {
    const t0 = Math.min(...all.map(([t]) => t));
    const t1 = Math.max(t0 + 1, ...all.map(([t]) => t));
    const top = roundUp(Math.max(...all.map(([, v]) => v)) * 1.1);
    const x = (t) => PLOT.left + ((t - t0) / (t1 - t0)) * (PLOT.right - PLOT.left);
    const y = (v) => PLOT.bottom - (v / top) * (PLOT.bottom - PLOT.top);
    for (const fraction of [0, 0.5, 1]) {
      const v = top * fraction;
      parts.push(svg('line', { class: 'grid', x1: PLOT.left, x2: PLOT.right, y1: y(v), y2: y(v) }));
      parts.push(svg('text', { class: 'tick', x: PLOT.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, number(v)));
    }
    for (const [t, anchor] of [[t0, 'start'], [t1, 'end']]) {
      parts.push(svg('text', { class: 'tick', x: x(t), y: PLOT.bottom + 18, 'text-anchor': anchor }, seconds(t)));
    }
    for (const [name, points] of series) {
      if (points.length < 2) continue;
      const d = points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
      parts.push(svg('polyline', { class: `line ${name}`, points: d }));
    }
  } else {
    parts.push(svg('text', { class: 'tick', x: 230, y: 90, 'text-anchor': 'middle' }, 'no live data yet'));
  }
  target.replaceChildren(...parts);
}

function roundUp(v) {
  if (!(v > 0)) return 1;
  const step = 10 ** Math.floor(Math.log10(v));
  return Math.ceil(v / step) * step;
}

// ---- actions ---------------------------------------------------------------------------------

async function stopRun(id) {
  update(await apiJson(`/v1/runs/${id}/stop`, { method: 'POST' }));
  say(`Run ${id} is stopping: requests in flight drain first.`);
  followActiveRuns();
}

async function deleteRun(id) {
  if (!confirm(`Delete run ${id} with its CSV and summary?`)) return;
  await api(`/v1/runs/${id}`, { method: 'DELETE' });
  forget(id);
  say(`Run ${id} deleted.`);
}

// A download that needs the token: fetched, then handed to the browser as a local object URL.
async function download(path, filename) {
  const blob = await (await api(path)).blob();
  const link = document.createElement('a');
  link.href = URL.createObjectURL(blob);
  link.download = filename;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
}

// The report is shown in a sandboxed frame: no script runs in it, and it cannot reach this page.
async function openReport(id) {
  say(`Rendering the report of run ${id}…`);
  const html = await (await api(`/v1/runs/${id}/report.html`)).blob();
  if (reportUrl) URL.revokeObjectURL(reportUrl);
  reportUrl = URL.createObjectURL(new Blob([html], { type: 'text/html' }));
  $('#report-id').textContent = id;
  $('#report').src = reportUrl;
  $('#report-tab').href = reportUrl;
  $('#report-save').href = reportUrl;
  $('#report-save').download = `sluice-${id}-report.html`;
  $('#report-section').hidden = false;
  $('#report-section').scrollIntoView();
  say('');
}

$('#report-close').addEventListener('click', () => {
  $('#report-section').hidden = true;
});

$('#submit-form').addEventListener('submit', (event) => {
  event.preventDefault();
  submitRun(event.target).catch(report);
});

// The form's fields are the commonest options; anything else goes in the JSON box, with the
// API's own names (the long flags in snake_case).
async function submitRun(form) {
  const fields = new FormData(form);
  let request = {};
  const extra = fields.get('extra').trim();
  if (extra) {
    try {
      request = JSON.parse(extra);
    } catch (error) {
      throw new Error(`More options: not JSON (${error.message})`);
    }
  }
  request.logs = fields.getAll('logs');
  if (!request.logs.length) throw new Error('Choose at least one uploaded log to replay.');
  request.target = fields.get('target').trim();
  for (const key of ['rate', 'duration']) {
    const value = fields.get(key).trim();
    if (value) request[key] = value;
  }
  const run = await apiJson('/v1/runs', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(request),
  });
  update(run);
  $('#runs tbody').prepend(rows.get(run.id));
  $('#no-runs').hidden = true;
  select(run.id);
  followActiveRuns();
  say(`Run ${run.id} submitted (${run.state}).`);
}

// ---- logs ------------------------------------------------------------------------------------

function showLogs(logs) {
  const chosen = new Set(new FormData($('#submit-form')).getAll('logs'));
  const boxes = logs.map((log) => {
    const label = document.createElement('label');
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.name = 'logs';
    box.value = log.name;
    box.checked = chosen.has(log.name) || logs.length === 1;
    label.append(box, ` ${log.name}`);
    return label;
  });
  const legend = $('#submit-logs legend');
  if (!boxes.length) boxes.push(Object.assign(document.createElement('span'), { className: 'muted', textContent: 'none uploaded yet' }));
  $('#submit-logs').replaceChildren(legend, ...boxes);

  $('#logs tbody').replaceChildren(...logs.map((log) => {
    const row = document.createElement('tr');
    for (const [text, className] of [[log.name, ''], [bytes(log.bytes), 'num'], [when(log.modified), '']]) {
      const cell = document.createElement('td');
      cell.textContent = text;
      cell.className = className;
      row.append(cell);
    }
    return row;
  }));
}

$('#upload-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const file = event.target.elements.file.files[0];
  if (!file) return;
  say(`Uploading ${file.name}…`);
  api(`/v1/logs/${encodeURIComponent(file.name)}`, { method: 'PUT', body: file })
    .then(() => {
      say(`${file.name} uploaded.`);
      event.target.reset();
      return refresh();
    })
    .catch(report);
});

// ---- figures as text -------------------------------------------------------------------------

function count(n) {
  return n == null ? '' : n.toLocaleString('en');
}

function number(n) {
  if (n == null || Number.isNaN(n)) return '';
  return n >= 100 ? Math.round(n).toLocaleString('en') : n.toLocaleString('en', { maximumFractionDigits: 1 });
}

function seconds(s) {
  s = Math.round(s);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m${String(s % 60).padStart(2, '0')}s` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : '';
}

// ---- start -----------------------------------------------------------------------------------

// Without a stored token the page first asks as is: a daemon on loopback may need none, and one
// that does answers 401, which brings up the token form.
async function start() {
  try {
    await refresh();
    say('');
  } catch (error) {
    report(error);
  }
}

start();
setInterval(() => {
  if (!$('#app').hidden) refresh().catch(report);
}, LIST_EVERY_MS);
