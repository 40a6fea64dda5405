// The console's sections, each drawn from API answers: topology, backups,
// jobs, drills, history. Each function returns nodes; it never fetches.

import {h, table, bytes, when, seconds, since, badge} from './dom.js';

// clusterLine is the header's summary of a status report.
export function clusterLine(r) {
  return [
    h('span', null, 'cluster ', h('strong', null, r.cluster)),
    h('span', null, 'leader ', h('strong', {id: 'leader'}, r.leader || '(none)')),
    h('span', null, 'mode ' + r.mode),
    r.paused && badge('PAUSED: no automatic failover', 'paused'),
    r.operation && badge('operation: ' + r.operation, 'operation'),
  ];
}

// topology draws one card per member: role, health, lag, sync state.
export function topology(r) {
  return r.members.map((m) => {
    const flags = [
      m.leader && badge('leader', 'leader'),
      m.sync && badge('sync', 'sync'),
      m.detached && badge('detached', 'warn'),
      m.paused && badge('paused', 'paused'),
      m.delayed && badge('delayed', 'warn'),
      m.stale && badge('unreachable', 'bad'),
    ];
    const lag = m.role === 'standby'
      ? `${bytes(m.lag_bytes)} · ${seconds(m.lag_seconds || 0)}`
      : '-';
    const rows = [
      ['state', m.state + (m.problem ? ` (${m.problem})` : '')],
      ['timeline', m.timeline],
      [m.role === 'primary' ? 'WAL' : 'received', m.wal_lsn || m.received_lsn || '-'],
      ['replayed', m.replayed_lsn || '-'],
      ['lag', lag],
      ['replication', m.role === 'standby' ? (m.streaming ? `streams from ${m.following || '?'}` : 'not streaming') + (m.sync_state ? ` (${m.sync_state})` : '') : '-'],
      ['address', `${m.host}:${m.port}`],
      ['status age', seconds(m.age_seconds)],
    ];
    return h('article', {class: `member ${m.role} ${m.healthy ? 'healthy' : 'unhealthy'}`, 'data-member': m.name, 'data-role': m.role, 'data-healthy': String(m.healthy)},
      h('div', {class: 'member-head'},
        h('span', {class: 'dot', title: m.healthy ? 'healthy' : 'not healthy'}),
        h('strong', {class: 'name'}, m.name),
        h('span', {class: 'role badge ' + m.role}, m.role)),
      h('div', {class: 'flags'}, flags),
      h('dl', null, rows.map(([k, v]) => [h('dt', null, k), h('dd', null, String(v))])));
  });
}

// runsOf lists every run of the jobs of a kind, newest first.
function runsOf(jobList, kind) {
  const ids = new Set((jobList.jobs || []).filter((j) => !kind || j.kind === kind).map((j) => j.id));
  const out = [];
  for (const [id, runs] of Object.entries(jobList.runs || {})) {
    if (ids.has(id)) out.push(...runs);
  }
  return out.sort((a, b) => Date.parse(b.trigger) - Date.parse(a.trigger));
}

const ended = (run) => run.ended && !run.ended.startsWith('0001-');

// verification says what last checked a backup: a verify run that
// started after it was taken, or a drill that restored it.
function verification(b, jobList) {
  const drill = runsOf(jobList, 'drill').find((r) => r.backup_id === b.id && r.status === 'succeeded');
  const verify = runsOf(jobList, 'verify').find((r) => ended(r) && Date.parse(r.started) >= Date.parse(b.stop_time) &&
    (r.status === 'succeeded' || r.status === 'failed'));
  if (verify && verify.status === 'failed') return h('span', {title: verify.message}, badge('verify failed', 'failed'), ' ' + when(verify.ended));
  const parts = [];
  if (verify) parts.push(badge('verified', 'succeeded'), ' ' + when(verify.ended) + ' ');
  if (drill) parts.push(badge('restored in a drill', 'succeeded'), ' ' + when(drill.ended));
  return parts.length ? h('span', null, parts) : h('span', {class: 'muted'}, 'not verified yet');
}

// backups lists the repository's backups with the restore window they
// open and what verified each.
export function backups(answer, jobList) {
  if (!answer.ok) return h('p', {class: 'muted'}, answer.data.error);
  const list = [...(answer.data || [])].sort((a, b) => Date.parse(b.stop_time) - Date.parse(a.stop_time));
  if (list.length === 0) return h('p', {class: 'muted'}, 'No backup yet.');
  const oldest = list[list.length - 1];
  const total = list.reduce((n, b) => n + b.stored_size, 0);
  const summary = h('p', {class: 'summary'},
    `${list.length} backup${list.length === 1 ? '' : 's'}, ${bytes(total)} stored. Point-in-time restore window: from `,
    h('strong', null, when(oldest.stop_time)), ' (the end of the oldest backup) to the newest archived WAL.');
  const rows = list.map((b) => h('tr', {'data-backup': b.id},
    h('td', {class: 'mono'}, b.id),
    h('td', null, b.kind),
    h('td', null, when(b.start_time)),
    h('td', null, when(b.stop_time)),
    h('td', null, seconds(since(b.start_time, b.stop_time))),
    h('td', {class: 'num'}, bytes(b.size)),
    h('td', {class: 'num'}, bytes(b.stored_size)),
    h('td', {class: 'num'}, b.timeline),
    h('td', null, verification(b, jobList)),
    h('td', null, b.pinned && badge('pinned', 'sync'), b.label ? ' ' + b.label : '')));
  return [summary, table(['ID', 'kind', 'started', 'restorable from', 'took', 'size', 'stored', 'TL', 'verified', 'label'], rows, {class: 'backups'})];
}

function schedule(sc) {
  const at = sc.at ? ' ' + when(sc.at) : '';
  const time = sc.time_of_day ? '@' + sc.time_of_day : '';
  const every = sc.every > 1 ? ` every ${sc.every}${sc.unit ? ' ' + sc.unit : ''}` : '';
  const days = sc.weekdays ? ' ' + sc.weekdays.join(',') : '';
  return sc.kind + every + days + time + (sc.kind === 'once' ? at : '') + (sc.zone && sc.zone !== 'UTC' ? ' ' + sc.zone : '');
}

// progress shows where a running run is.
function progress(run) {
  const p = run.progress;
  if (!p) return run.status === 'running' ? 'starting' : '';
  const parts = [p.phase || ''];
  if (p.total_bytes) parts.push(`${Math.min(100, Math.floor(p.done_bytes * 100 / p.total_bytes))}% of ${bytes(p.total_bytes)}`);
  else parts.push(bytes(p.done_bytes));
  if (p.bytes_per_second) parts.push(bytes(p.bytes_per_second) + '/s');
  if (p.eta_seconds) parts.push('eta ' + seconds(p.eta_seconds));
  return h('span', {class: 'progress'},
    h('progress', p.total_bytes ? {max: p.total_bytes, value: p.done_bytes} : null),
    ' ' + parts.filter(Boolean).join(', '));
}

function runRow(run) {
  const took = run.started && ended(run) ? seconds(since(run.started, run.ended)) : '';
  return h('tr', {'data-run': run.job, 'data-status': run.status},
    h('td', null, run.job),
    h('td', null, when(run.trigger)),
    h('td', null, run.node || '-'),
    h('td', null, badge(run.status)),
    h('td', null, took),
    h('td', {class: 'num'}, run.bytes_read ? bytes(run.bytes_read) : ''),
    h('td', {class: 'num'}, run.bytes_stored ? bytes(run.bytes_stored) : ''),
    h('td', {class: 'mono'}, run.backup_id || ''),
    h('td', null, run.status === 'running' ? progress(run) : (run.message || '')),
    h('td', null, run.log && h('details', null, h('summary', null, 'log'), h('pre', null, run.log))));
}

const runHead = ['job', 'triggered', 'node', 'status', 'took', 'moved', 'stored', 'backup', 'progress / message', ''];

// jobs lists the jobs, each with its last run and a button to run it now,
// then the recent runs of every job.
export function jobs(jobList, opButton) {
  const list = jobList.jobs || [];
  if (list.length === 0) return h('p', {class: 'muted'}, 'No job defined (pgguard jobs create, POST /api/v1/jobs).');
  const rows = list.map((j) => {
    const last = (jobList.runs[j.id] || []).at(-1);
    return h('tr', {'data-job': j.id},
      h('td', null, j.id, j.name && j.name !== j.id ? h('span', {class: 'muted'}, ' ' + j.name) : ''),
      h('td', null, j.kind),
      h('td', null, schedule(j.schedule)),
      h('td', null, j.node || 'primary'),
      h('td', null, j.enabled ? 'yes' : 'no'),
      h('td', null, last ? [badge(last.status), ' ' + when(last.trigger)] : '-'),
      h('td', null, last && last.status === 'running' ? progress(last) : ''),
      h('td', null, opButton('run-job', j.id, 'Run now')));
  });
  const recent = runsOf(jobList, '').slice(0, 15).map(runRow);
  return [
    table(['job', 'kind', 'schedule', 'runs on', 'enabled', 'last run', 'progress', ''], rows, {class: 'jobs'}),
    h('h3', null, 'Recent runs'),
    recent.length ? table(runHead, recent, {class: 'runs'}) : h('p', {class: 'muted'}, 'No run yet.'),
  ];
}

// drills lists the drill jobs with a button each, and every drill's result.
export function drills(drillList, opButton) {
  const list = drillList.jobs || [];
  if (list.length === 0) return h('p', {class: 'muted'}, 'No drill job defined (pgguard jobs create NAME --kind drill).');
  const buttons = h('p', {class: 'ops'}, list.map((j) => opButton('drill', j.id, 'Start drill ' + j.id)));
  const runs = runsOf(drillList, 'drill').map(runRow);
  return [buttons, runs.length ? table(runHead, runs, {class: 'drill-runs'}) : h('p', {class: 'muted'}, 'No drill has run yet.')];
}

// history lists events newest first.
export function history(events) {
  const rows = [...events].reverse().slice(0, 200).map((e) => h('tr', {'data-action': e.action},
    h('td', null, when(e.time)),
    h('td', null, e.node),
    h('td', null, e.action),
    h('td', null, e.target || ''),
    h('td', null, e.reason || ''),
    h('td', null, e.by || ''),
    h('td', null, e.result || '')));
  return table(['time', 'node', 'action', 'target', 'reason', 'by', 'result'], rows, {class: 'history'});
}
