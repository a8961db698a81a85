/* spamflow web page: what both pages share. No framework, no build step: the DOM is built
 * with createElement and textContent only (never innerHTML: every string comes from the
 * network), and no inline style (the Content-Security-Policy forbids it). */
'use strict';

const SF = {};

/* el('td', {class: 'num', title: 'x'}, 'text', childNode, ...) */
SF.el = function (tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined && v !== false) e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const k of kids) {
    if (k === null || k === undefined) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
};

SF.clear = function (e) {
  while (e.firstChild) e.removeChild(e.firstChild);
};

/* GET a JSON reply of the daemon: the object, or throws with its "error" */
SF.getJSON = async function (url) {
  const r = await fetch(url, { cache: 'no-store', credentials: 'same-origin' });
  let body = null;
  try {
    body = await r.json();
  } catch (e) {
    throw new Error(`${url}: HTTP ${r.status}, not JSON`);
  }
  if (!r.ok || !body || body.ok === false) {
    const err = new Error((body && body.error) || `${url}: HTTP ${r.status}`);
    err.status = r.status;
    throw err;
  }
  return body;
};

const pad = (n, w = 2) => String(n).padStart(w, '0');

/* "2026-12-06 14:36:22" in the browser's time zone */
SF.time = function (ms) {
  if (!ms) return '-';
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
};

SF.clock = function (ms) {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
};

/* "just now", "42s ago", "3m ago", "2h05m ago", "3d ago" against the daemon's clock */
SF.ago = function (ms, now) {
  if (!ms) return '-';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 2) return 'just now';
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${pad(Math.floor(s / 60) % 60)}m ago`;
  return `${Math.floor(s / 86400)}d ago`;
};

/* "31/50", "31 (est. 61±9)/50" when sampled, "80" for a context window (threshold 0) */
SF.valueCell = function (value, threshold, estimate, se) {
  let v = String(Math.round(value));
  if (estimate !== undefined && estimate !== null) {
    v += ` (est. ${Math.round(estimate)}\u00b1${Math.round(se || 0)})`;
  }
  const shown = threshold ? `${v}/${threshold}` : v;
  const over = threshold && (estimate !== undefined && estimate !== null ? estimate : value) >= threshold;
  return SF.el('td', { class: over ? 'num over' : 'num' }, shown);
};

SF.status = function (text, bad) {
  const s = document.getElementById('status');
  s.textContent = text;
  s.classList.toggle('bad', !!bad);
};

/* every reason the daemon knows, in a fixed order: its colour class is r-<index> */
SF.REASONS = ['smtp-fanout', 'smtp-blocked', 'submission-fanout', 'lateral-smtp',
  'mta-surge', 'auth-bruteforce', 'smtp-novelty'];
SF.reasonClass = function (reason) {
  const i = SF.REASONS.indexOf(reason);
  return `r-${i >= 0 ? i : 7}`;
};
