// DOM building and formatting. Every piece of data reaches the page as a
// text node or an attribute value: nothing here parses HTML.

// h builds an element: h('td', {class: 'x', onclick: f}, 'text', child).
// Strings become text nodes; null and false children are skipped.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

const svgNS = 'http://www.w3.org/2000/svg';

// s builds an SVG element the same way.
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(svgNS, tag);
  setAttrs(el, attrs);
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

// table builds a table from a header row and rows of cells.
export function table(head, rows, attrs) {
  return h('table', attrs,
    h('thead', null, h('tr', null, head.map((c) => h('th', null, c)))),
    h('tbody', null, rows));
}

export function bytes(n) {
  if (n === undefined || n === null) return '-';
  const units = [[1 << 30, 'GiB'], [1 << 20, 'MiB'], [1 << 10, 'KiB']];
  for (const [size, unit] of units) {
    if (n >= size) return (n / size).toFixed(1) + ' ' + unit;
  }
  return n + ' B';
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

// when writes an instant in the browser's time zone, to the second.
export function when(iso) {
  if (!iso || iso.startsWith('0001-')) return '-';
  const d = new Date(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// seconds writes a duration given in seconds.
export function seconds(x) {
  if (x < 1) return (x * 1000).toFixed(0) + ' ms';
  if (x < 120) return x.toFixed(x < 10 ? 2 : 1) + ' s';
  if (x < 7200) return (x / 60).toFixed(1) + ' min';
  return (x / 3600).toFixed(1) + ' h';
}

// nanos writes a Go time.Duration (JSON: nanoseconds).
export const nanos = (ns) => seconds(ns / 1e9);

// since is the time from one instant to another, in seconds.
export const since = (from, to) => (Date.parse(to) - Date.parse(from)) / 1000;

export function badge(text, kind) {
  return h('span', {class: 'badge ' + (kind || text)}, text);
}
