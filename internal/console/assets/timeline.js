// One failover or switchover as a picture: a lane per node, each event a
// numbered mark placed by its time since the episode began; the list below
// says what each mark is, as `pgguard ctl explain` prints it.

import {h, s, seconds, since, when} from './dom.js';

export const isPromotion = (e) => e.action === 'promote' && (e.result || '').startsWith('ok');

// episodeID is the id `ctl history` prints for an event (the history's
// JSON carries it as "id").
export const episodeID = (e) => e.id || 'last';

function eventLine(e) {
  return [e.node, e.action, e.target ? '→ ' + e.target : '', e.reason || '', e.by ? `(by ${e.by})` : '', `[${e.result || ''}]`]
    .filter(Boolean).join('  ');
}

// tone sorts an event into the colour of its mark.
function tone(e) {
  if (isPromotion(e)) return 'promote';
  if (/fail|lost|exit|fence|refused/.test(e.action) || /fail/.test(e.result || '')) return 'trouble';
  if (/request|cancel/.test(e.action)) return 'request';
  if (/stop|hand-over|release|demote|rewind|follow|start/.test(e.action)) return 'step';
  return 'other';
}

// tickStep picks a round step giving at most ten ticks over span seconds.
function tickStep(span) {
  for (const step of [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300]) {
    if (span / step <= 10) return step;
  }
  return 600;
}

const left = 80, right = 80, top = 20, lane = 84, gap = 22, plotWidth = 900;
// The rows a mark's label may take, nearest first: above, below, then
// further above and below when a neighbour's label is in the way.
const labelRows = [-15, 25, -29, 39];

// draw returns the episode's heading, picture and event list.
export function draw(ep) {
  const events = ep.events || [];
  const span = Math.max(since(ep.start, ep.end), 0.001);
  const nodes = [...new Set(events.map((e) => e.node))].sort((a, b) => {
    const ops = (n) => (n === 'ctl' || n === 'api' ? 1 : 0);
    return ops(a) - ops(b) || a.localeCompare(b);
  });
  const x0 = (e) => left + (since(ep.start, e.time) / span) * plotWidth;
  const lastX = {};
  const labelEnds = {}; // node → where the last label of each row ends
  const marks = events.map((e, i) => {
    const x = Math.max(x0(e), (lastX[e.node] ?? -Infinity) + gap);
    lastX[e.node] = x;
    const half = e.action.length * 3 + 4; // about 6 px a character
    const ends = (labelEnds[e.node] ??= labelRows.map(() => -Infinity));
    let row = ends.findIndex((end) => end < x - half);
    if (row < 0) row = ends.indexOf(Math.min(...ends));
    ends[row] = x + half;
    return {e, i, x, y: top + nodes.indexOf(e.node) * lane + lane / 2, dy: labelRows[row]};
  });
  const width = Math.max(left + plotWidth + right, ...marks.map((m) => m.x + right));
  const axisY = top + nodes.length * lane + 10;
  const height = axisY + 30;
  const step = tickStep(span);
  const ticks = [];
  for (let t = 0; t <= span + 1e-9; t += step) {
    const x = left + (t / span) * plotWidth;
    ticks.push(s('line', {x1: x, x2: x, y1: top, y2: axisY, class: 'grid'}),
      s('text', {x, y: axisY + 16, class: 'tick', 'text-anchor': 'middle'}, '+' + seconds(t)));
  }
  const svg = s('svg', {viewBox: `0 0 ${width} ${height}`, class: 'timeline', role: 'img',
    'aria-label': `${ep.kind} ${ep.from || '?'} to ${ep.to}: ${events.length} events across ${nodes.length} lanes`},
    ticks,
    nodes.map((n, i) => s('g', {class: 'lane', 'data-lane': n},
      s('line', {x1: left, x2: width - right / 2, y1: top + i * lane + lane / 2, y2: top + i * lane + lane / 2}),
      s('text', {x: 8, y: top + i * lane + lane / 2 + 4, class: 'lane-name'}, n))),
    marks.map((m) => s('g', {class: 'mark ' + tone(m.e), 'data-action': m.e.action},
      s('title', null, `+${since(ep.start, m.e.time).toFixed(3)} s  ${eventLine(m.e)}`),
      s('circle', {cx: m.x, cy: m.y, r: 9}),
      s('text', {x: m.x, y: m.y + 3.5, 'text-anchor': 'middle', class: 'num'}, m.i + 1),
      s('text', {x: m.x, y: m.y + m.dy, 'text-anchor': 'middle', class: 'label'}, m.e.action))));
  const list = h('ol', {class: 'episode-events'}, events.map((e) =>
    h('li', null, h('span', {class: 'mono'}, `+${since(ep.start, e.time).toFixed(3)} s`), '  ' + eventLine(e))));
  return [
    h('h3', {'data-kind': ep.kind, 'data-from': ep.from || '', 'data-to': ep.to},
      `${ep.kind} ${ep.from || '?'} → ${ep.to}, ${when(ep.start)}, took ${seconds(span)}`),
    h('div', {class: 'svg-wrap'}, svg),
    list,
  ];
}
