// The operations behind buttons. Each opens a confirmation that first
// asks the API for the operation's plan (?dry_run=1) and shows every
// check, pass or fail; Confirm is enabled only when the plan passes.

import {call} from './api.js';
import {h, nanos} from './dom.js';

const backupKinds = new Set(['full', 'incr']);

// runNow is where a job is run by hand: backups and drills through the
// routes that check (and answer ?dry_run=1), other kinds through the
// job's own start, which has no check.
function runNow(job) {
  if (backupKinds.has(job.kind)) return {path: '/api/v1/backups', body: {job: job.id}};
  if (job.kind === 'drill') return {path: '/api/v1/drills', body: {job: job.id}};
  return {path: `/api/v1/jobs/${encodeURIComponent(job.id)}/start`, body: {}, noDryRun: true};
}

// operations: title, route and body, the message once done.
const operations = {
  switchover: (ctx) => ({
    title: 'Switch over',
    fields: () => candidateField(ctx.report),
    path: '/api/v1/switchover',
    body: () => ({to: document.getElementById('switchover-to').value}),
    working: 'switching over (the answer comes when the new primary runs)…',
    done: (d) => `switchover ${d.from} → ${d.to} done in ${nanos(d.took)}; no node took writes for ${nanos(d.outage_ns)}`,
  }),
  pause: () => ({title: 'Pause automatic failover', path: '/api/v1/pause', body: () => ({}), checkless: true, done: () => 'automatic failover paused'}),
  resume: () => ({title: 'Resume automatic failover', path: '/api/v1/resume', body: () => ({}), checkless: true, done: () => 'automatic failover resumed'}),
  'run-job': (ctx, job) => {
    const r = runNow(job);
    return {title: `Run job ${job.id} (${job.kind}) now`, path: r.path, body: () => r.body, noDryRun: r.noDryRun,
      done: (run) => `run of ${run.job} requested (${run.status}); it shows under Jobs`};
  },
  drill: (ctx, job) => ({title: `Start drill ${job.id}`, path: '/api/v1/drills', body: () => ({job: job.id}),
    done: (run) => `drill ${run.job} requested; its result shows under Drills`}),
};

function candidateField(report) {
  const standbys = report.members.filter((m) => !m.leader && m.role === 'standby');
  const preferred = standbys.find((m) => m.healthy && m.streaming && !m.detached) || standbys[0];
  return h('label', null, `From ${report.leader || '(no leader)'} to `,
    h('select', {id: 'switchover-to'}, standbys.map((m) =>
      h('option', {value: m.name, selected: preferred && m.name === preferred.name},
        `${m.name} (${m.state}${m.sync ? ', sync' : ''})`))));
}

function planView(plan) {
  const checks = plan.checks || [];
  return h('div', {class: 'plan', 'data-ok': String(plan.ok)},
    h('p', null, h('strong', null, plan.operation)),
    checks.length
      ? h('ul', {class: 'checks'}, checks.map((c) => h('li', {class: c.ok ? 'pass' : 'fail', 'data-check': c.name},
        h('span', {class: 'mark'}, c.ok ? '✓ pass' : '✗ FAIL'), ' ', h('strong', null, c.name), c.detail ? ' — ' + c.detail : '')))
      : h('p', {class: 'muted'}, 'No condition to check.'),
    h('p', {class: plan.ok ? 'verdict pass' : 'verdict fail'}, plan.ok ? 'Every check passes.' : 'A check fails: the operation would be refused.'));
}

// Confirm runs the dialog; ctx gives the latest status report and what to
// do after an operation (refresh, say so).
export function makeConfirm(ctx) {
  const dialog = document.getElementById('confirm');
  const el = (id) => document.getElementById(id);
  let current = null;
  let seq = 0;

  async function check() {
    const my = ++seq;
    const op = current;
    el('confirm-go').disabled = true;
    el('confirm-error').textContent = '';
    if (op.noDryRun) {
      el('confirm-plan').replaceChildren(h('p', {class: 'muted'}, 'This operation has no check: it starts when you confirm.'));
      el('confirm-go').disabled = false;
      return;
    }
    el('confirm-plan').replaceChildren(h('p', {class: 'muted'}, 'checking…'));
    const r = await call('POST', op.path + '?dry_run=1', op.body());
    if (my !== seq || op !== current) return;
    if (r.ok) {
      el('confirm-plan').replaceChildren(planView(r.data.plan));
      el('confirm-go').disabled = !r.data.plan.ok;
    } else if (op.checkless && r.status === 400) {
      el('confirm-plan').replaceChildren(h('p', {class: 'muted'}, r.data.error));
      el('confirm-go').disabled = false;
    } else {
      el('confirm-plan').replaceChildren(r.data.plan ? planView(r.data.plan) : '');
      el('confirm-error').textContent = r.data.error;
    }
  }

  async function go() {
    const op = current;
    seq++;
    el('confirm-go').disabled = true;
    el('confirm-plan').append(h('p', {class: 'working'}, op.working || 'working…'));
    const r = await call('POST', op.path, op.body());
    if (r.ok) {
      if (op === current) dialog.close();
      ctx.notice(op.done(r.data), 'ok');
      ctx.refresh();
      return;
    }
    if (op !== current) { // the dialog was closed meanwhile
      ctx.notice(`${op.title}: ${r.data.error}`, 'error');
      return;
    }
    el('confirm-plan').replaceChildren(r.data.plan ? planView(r.data.plan) : '');
    el('confirm-error').textContent = r.data.error + (r.data.hint ? ` (${r.data.hint})` : '');
  }

  el('confirm-go').addEventListener('click', go);
  el('confirm-cancel').addEventListener('click', () => dialog.close());
  dialog.addEventListener('close', () => { current = null; seq++; });
  el('confirm-fields').addEventListener('change', check);

  return function open(name, arg) {
    current = operations[name](ctx, arg);
    el('confirm-title').textContent = current.title;
    el('confirm-fields').replaceChildren(current.fields ? current.fields() : '');
    el('confirm-plan').replaceChildren();
    el('confirm-error').textContent = '';
    dialog.showModal();
    check();
  };
}
