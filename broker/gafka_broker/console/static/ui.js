// Small DOM helpers shared by the pages: element building, formatting, the error banner, confirmations.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function replace(container, ...children) {
  container.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

/** A table; rows are arrays of cells (a cell: text, a node, or {value, class}). Narrow screens stack it. */
export function table(headers, rows, { caption, empty = 'Nothing yet.', id } = {}) {
  if (!rows.length) return h('p', { class: 'muted', id }, empty);
  const cls = (header) => (header.num ? 'num' : undefined);
  return h(
    'div',
    { class: 'scroll', id },
    h(
      'table',
      { class: 'stack' },
      caption ? h('caption', { class: 'muted' }, caption) : null,
      h('thead', {}, h('tr', {}, headers.map((hd) => h('th', { scope: 'col', class: cls(hd) }, hd.label ?? hd)))),
      h(
        'tbody',
        {},
        rows.map((row) =>
          h(
            'tr',
            {},
            row.map((cell, i) => {
              const header = headers[i];
              const label = header.label ?? header;
              if (cell && typeof cell === 'object' && !(cell instanceof Node) && 'value' in cell) {
                return h('td', { class: [cls(header), cell.class].filter(Boolean).join(' ') || undefined, 'data-label': label }, cell.value);
              }
              return h('td', { class: cls(header), 'data-label': label }, cell ?? '–');
            }),
          ),
        ),
      ),
    ),
  );
}

export function card(label, value, state) {
  return h('div', { class: `card ${state || ''}` }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, value));
}

export function pill(text, kind) {
  return h('span', { class: `pill ${kind}` }, text);
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
export function bytes(n) {
  if (n === null || n === undefined) return '–';
  let value = n;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit ? value.toFixed(1) : value} ${UNITS[unit]}`;
}

export const number = (n) => (n === null || n === undefined ? '–' : Number(n).toLocaleString('en'));
export const time = (ms) => (ms === null || ms === undefined ? '–' : new Date(ms).toISOString().replace('T', ' ').replace('Z', ''));

let bannerTimer = null;
export function showError(error, context) {
  const banner = document.getElementById('banner');
  const what = error && error.code ? `${error.code}: ${error.message}` : String(error && error.message ? error.message : error);
  banner.textContent = context ? `${context}: ${what}` : what;
  banner.hidden = false;
  clearTimeout(bannerTimer);
  bannerTimer = setTimeout(() => (banner.hidden = true), 15000);
}
export function clearError() {
  document.getElementById('banner').hidden = true;
}

/** Ask before something that cannot be undone; resolves true when confirmed. */
export function confirmAction(title, body, okLabel = 'Confirm') {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-title').textContent = title;
  replace(document.getElementById('confirm-body'), body);
  document.getElementById('confirm-ok').textContent = okLabel;
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true }));
}

/** A small line chart of the last values (lag over time). */
export function sparkline(values, { width = 120, height = 24, label = 'trend' } = {}) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('class', 'spark');
  svg.setAttribute('width', width);
  svg.setAttribute('height', height);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', `${label}: ${values.join(', ')}`);
  if (values.length) {
    const max = Math.max(...values, 1);
    const step = values.length > 1 ? (width - 2) / (values.length - 1) : 0;
    const points = values.map((v, i) => `${1 + i * step},${height - 2 - (v / max) * (height - 4)}`).join(' ');
    const line = document.createElementNS(ns, 'polyline');
    line.setAttribute('points', points);
    line.setAttribute('fill', 'none');
    line.setAttribute('stroke', '#2456c7');
    line.setAttribute('stroke-width', '1.5');
    svg.append(line);
  }
  return svg;
}

export function field(labelText, input) {
  return h('label', {}, labelText, input);
}

export function params() {
  const hash = location.hash.replace(/^#/, '') || '/';
  const [path, query = ''] = hash.split('?');
  return { path, query: new URLSearchParams(query) };
}
