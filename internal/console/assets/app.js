// The console's start: login, then a few polls of the API, each drawing
// its sections. Operations are buttons only for the roles allowed them
// (the API checks the role again).

import * as api from './api.js';
import {h, when} from './dom.js';
import * as views from './views.js';
import {draw, episodeID, isPromotion} from './timeline.js';
import {makeConfirm} from './ops.js';

const el = (id) => document.getElementById(id);

const state = {
  me: null, // {name, role}
  report: null,
  jobs: {jobs: [], runs: {}},
  backups: null,
  history: [],
  episodes: new Map(), // id → {episode, fetched}
  chosen: '', // the episode shown ('' follows the newest)
  generation: 0, // a login's polls stop when it changes
  drawn: new Map(), // section → JSON it was drawn from
};

const canOperate = () => state.me && (state.me.role === 'operator' || state.me.role === 'admin');

function notice(text, kind) {
  el('notice').textContent = text;
  el('notice').className = kind || '';
}

const confirm = makeConfirm({
  get report() { return state.report; },
  notice,
  refresh: () => refreshAll(state.generation),
});

// opButton is a button for an operation, or nothing for a viewer.
function opButton(op, arg, label) {
  if (!canOperate()) return null;
  return h('button', {type: 'button', class: 'op', 'data-op': op, 'data-arg': arg && arg.id, onclick: () => confirm(op, arg)}, label);
}

// redraw replaces a section's content when its data changed (an open
// log or a selection survives the polls that bring nothing new).
function redraw(id, data, build) {
  const key = JSON.stringify(data);
  if (state.drawn.get(id) === key) return;
  state.drawn.set(id, key);
  el(id).replaceChildren(...[build()].flat().filter(Boolean));
}

// Each refresh is given its login's generation and draws nothing once
// that login ended (a poll may still be waiting for the API then).
const stale = (generation) => generation !== state.generation;

async function refreshCluster(generation) {
  const r = await api.get('/api/v1/cluster?store=0');
  if (stale(generation)) return;
  if (!r.ok) {
    el('refreshed').textContent = 'not refreshed: ' + r.data.error;
    el('refreshed').className = 'error';
    return;
  }
  state.report = r.data;
  el('refreshed').textContent = 'updated ' + when(new Date().toISOString());
  el('refreshed').className = 'muted';
  el('cluster-line').replaceChildren(...views.clusterLine(r.data).filter(Boolean));
  redraw('topology', r.data.members, () => views.topology(r.data));
  redraw('ops', [r.data.paused, r.data.leader, state.me.role], () => [
    r.data.leader && opButton('switchover', null, 'Switch over…'),
    r.data.paused ? opButton('resume', null, 'Resume automatic failover') : opButton('pause', null, 'Pause automatic failover'),
  ]);
}

async function refreshJobs(generation) {
  const r = await api.get('/api/v1/jobs');
  if (stale(generation) || !r.ok) return;
  r.data.jobs ||= []; // Go writes an empty list as null
  r.data.runs ||= {};
  state.jobs = r.data;
  const job = (id) => r.data.jobs.find((j) => j.id === id);
  const button = (op, id, label) => opButton(op, job(id), label);
  redraw('jobs', [r.data, state.me.role], () => views.jobs(r.data, (op, id, label) => button(op, id, label)));
  const drills = {jobs: r.data.jobs.filter((j) => j.kind === 'drill'), runs: r.data.runs};
  redraw('drills', [drills, state.me.role], () => views.drills(drills, (op, id, label) => button(op, id, label)));
}

async function refreshBackups(generation) {
  const r = await api.get('/api/v1/backups');
  if (stale(generation) || r.status === 401) return;
  state.backups = r;
  redraw('backups', [state.backups, state.jobs], () => views.backups(state.backups, state.jobs));
}

async function refreshHistory(generation) {
  const r = await api.get('/api/v1/history?since=24h');
  if (stale(generation) || !r.ok) return;
  state.history = r.data || [];
  redraw('history', state.history.slice(-200), () => views.history(state.history));
  const promotions = state.history.filter(isPromotion).reverse();
  const ids = promotions.map(episodeID);
  if (state.chosen && !ids.includes(state.chosen)) state.chosen = '';
  redraw('episode-picker', ids, () => promotions.length < 2 ? [] : h('select', {id: 'episode-select', onchange: (ev) => {
    state.chosen = ev.target.value === ids[0] ? '' : ev.target.value;
    showEpisode(generation, ids);
  }}, promotions.map((p, i) => h('option', {value: ids[i], selected: ids[i] === state.chosen}, `${p.node} promoted ${when(p.time)}`))));
  await showEpisode(generation, ids);
}

// showEpisode draws the chosen episode, fetching it once (again while it
// is young: events up to a minute after the promotion belong to it).
async function showEpisode(generation, ids) {
  const id = state.chosen || ids[0];
  if (!id) {
    redraw('timeline', 'none', () => h('p', {class: 'muted'}, 'No failover or switchover in the last 24 hours.'));
    return;
  }
  let cached = state.episodes.get(id);
  if (!cached || (Date.now() - Date.parse(cached.episode.end) < 70000 && Date.now() - cached.fetched > 2500)) {
    const r = await api.get('/api/v1/explain/' + encodeURIComponent(id));
    if (stale(generation)) return;
    if (!r.ok) {
      redraw('timeline', r.data, () => h('p', {class: 'error'}, r.data.error));
      return;
    }
    cached = {episode: r.data, fetched: Date.now()};
    state.episodes.set(id, cached);
  }
  if ((state.chosen || ids[0]) === id) redraw('timeline', cached.episode, () => draw(cached.episode));
}

// poll runs f every ms after the previous run ended, while the login lasts.
async function poll(generation, ms, f) {
  while (!stale(generation)) {
    try {
      await f(generation);
    } catch (e) {
      notice('console error: ' + e.message, 'error');
    }
    await new Promise((done) => setTimeout(done, ms));
  }
}

function refreshAll(generation) {
  refreshCluster(generation);
  refreshJobs(generation);
  refreshHistory(generation);
}

function showLogin(message) {
  state.generation++;
  state.me = null;
  state.drawn.clear();
  state.episodes.clear();
  el('app-view').hidden = true;
  el('who').hidden = true;
  el('cluster-line').replaceChildren();
  // Nothing of the last login's view stays in the page.
  for (const id of ['ops', 'topology', 'episode-picker', 'timeline', 'backups', 'jobs', 'drills', 'history', 'refreshed']) {
    el(id).replaceChildren();
  }
  el('login-form').reset();
  el('login-view').hidden = false;
  el('login-error').textContent = message || '';
}

async function start() {
  const who = await api.get('/api/v1/whoami');
  if (!who.ok) {
    api.clearToken();
    showLogin(who.data.error);
    return;
  }
  const generation = ++state.generation;
  state.me = who.data;
  el('who-name').textContent = `${who.data.name} (${who.data.role})`;
  el('who').hidden = false;
  el('login-view').hidden = true;
  el('app-view').hidden = false;
  notice('');
  poll(generation, 1500, refreshCluster);
  poll(generation, 2000, refreshJobs);
  poll(generation, 3000, refreshHistory);
  poll(generation, 10000, refreshBackups);
}

el('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const r = await api.call('POST', '/api/v1/login', {user: el('login-user').value, password: el('login-password').value});
  el('login-password').value = '';
  if (!r.ok) {
    el('login-error').textContent = r.data.error;
    return;
  }
  api.setToken(r.data.token);
  start();
});

el('token-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  api.setToken(el('login-token').value.trim());
  el('login-token').value = '';
  start();
});

el('logout').addEventListener('click', async () => {
  if ((api.token() || '').startsWith('pgs_')) await api.call('POST', '/api/v1/logout');
  api.clearToken();
  showLogin('Logged out.');
});

api.onUnauthorized((why) => {
  api.clearToken();
  showLogin('Log in again: ' + why);
});

if (api.token()) start();
else showLogin();
