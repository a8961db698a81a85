/* The host page (/host/ADDR): /api/host/ADDR?since=1h|24h|7d, the host reply with its
 * "timeline" (the history store's series, events and actions). The chart is SVG drawn
 * here (no library): per reason, the value the heuristic read at the end of each slice
 * against its threshold, the short window and the long window in two panels. Refreshed
 * every 10 s. */
'use strict';

const REFRESH_MS = 10000;
const SVGNS = 'http://www.w3.org/2000/svg';
const W = 960, H = 190, ML = 52, MR = 12, MT = 22, MB = 24;

const addr = decodeURIComponent(location.pathname.slice('/host/'.length));
let since = (location.hash.match(/since=(1h|24h|7d)/) || [null, '24h'])[1];
let timer = null;
let shown = null; /* what the chart holds, for the readout */

function svg(tag, attrs, ...kids) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}

/* one panel: the series of window w ('short' or 'long') of every reason in the points */
function panel(tl, w, reasons, y0) {
  const g = svg('g', { class: `panel panel-${w}`, 'data-window': w });
  const pts = tl.points;
  /* a host whose history begins inside the range: the axis begins with it */
  const t0 = pts.length ? Math.max(tl.since_ms, pts[0].t - (tl.slice_ms || 60000)) : tl.since_ms;
  const t1 = Math.max(tl.until_ms, t0 + 1);
  const val = (r, p) => {
    const x = p.reasons && p.reasons[r];
    if (!x) return null;
    const est = x[`${w}_estimate`];
    return est !== undefined && est !== null ? est : x[w];
  };
  let max = 1;
  for (const p of pts) {
    for (const r of reasons) {
      const x = p.reasons && p.reasons[r];
      if (!x) continue;
      max = Math.max(max, val(r, p) || 0, x[`${w}_threshold`] || 0);
    }
  }
  max = Math.ceil(max * 1.1);
  const X = (t) => ML + ((t - t0) / (t1 - t0)) * (W - ML - MR);
  const Y = (v) => y0 + MT + (1 - v / max) * (H - MT - MB);
  /* frame, y grid and labels */
  g.append(svg('rect', { class: 'frame', x: ML, y: y0 + MT, width: W - ML - MR, height: H - MT - MB }));
  for (const v of [0, Math.round(max / 2), max]) {
    g.append(svg('line', { class: 'grid', x1: ML, x2: W - MR, y1: Y(v), y2: Y(v) }));
    g.append(svg('text', { class: 'ylabel', x: ML - 6, y: Y(v) + 4 }, v));
  }
  /* what the values count: the reasons' metrics (heuristics_metric()), those drawn only;
   * smtp-novelty's short value is its new destinations, its long one the port-25 window's
   * distinct (the host reply's context) */
  const what = [];
  if (reasons.some((r) => r !== 'auth-bruteforce' && (r !== 'smtp-novelty' || w === 'long'))) what.push('distinct destinations');
  if (w === 'short' && reasons.includes('smtp-novelty')) what.push('new ones for smtp-novelty');
  if (reasons.includes('auth-bruteforce')) what.push('attempts for auth-bruteforce');
  g.append(svg('text', { class: 'ptitle', x: ML, y: y0 + MT - 7 },
    `${w} window: ${what.join('; ') || 'distinct destinations'}`));
  /* x labels */
  const span = t1 - t0;
  for (let i = 0; i <= 6; i++) {
    const t = t0 + (span * i) / 6;
    const label = span > 2 * 86400000 ? SF.time(t).slice(5, 16) : span < 600000 ? SF.time(t).slice(11) : SF.clock(t);
    g.append(svg('text', { class: `xlabel${i === 0 ? ' first' : i === 6 ? ' last' : ''}`, x: X(t), y: y0 + H - 6 }, label));
  }
  /* alert events: raised red, cleared green */
  for (const ev of tl.events || []) {
    if (ev.time_ms < t0 || ev.time_ms > t1 || ev.event === 'updated') continue;
    const l = svg('line', { class: `mark mark-${ev.event}`, x1: X(ev.time_ms), x2: X(ev.time_ms), y1: Y(max), y2: Y(0) });
    l.append(svg('title', {}, `${SF.time(ev.time_ms)} ${ev.event} ${ev.reason}`));
    g.append(l);
  }
  const gap = 1.5 * (tl.slice_ms || 60000);
  for (const r of reasons) {
    /* a series breaks where the host was not measured (no point, or not this reason) */
    let d = '', td = '', last = null, lastTh = null;
    const values = [];
    /* a point with no neighbour (the first reading of a host just raised, or one between two
     * gaps) draws no line: it gets a dot, and its threshold a dash */
    const lone = [];
    let run = [];
    const endRun = () => {
      if (run.length === 1) lone.push(run[0]);
      run = [];
    };
    for (const p of pts) {
      const x = p.reasons && p.reasons[r];
      const v = val(r, p);
      if (!x || v === null || v === undefined) {
        last = null;
        endRun();
        continue;
      }
      values.push([p.t, v]);
      const cont = last !== null && p.t - last <= gap;
      if (!cont) endRun();
      run.push([p.t, v, x[`${w}_threshold`]]);
      d += `${cont ? 'L' : 'M'}${X(p.t).toFixed(1)} ${Y(v).toFixed(1)}`;
      const th = x[`${w}_threshold`];
      if (th) {
        /* the threshold in force then: a step line */
        td += cont && lastTh !== null ? `L${X(p.t).toFixed(1)} ${Y(lastTh).toFixed(1)}L${X(p.t).toFixed(1)} ${Y(th).toFixed(1)}`
          : `M${X(p.t).toFixed(1)} ${Y(th).toFixed(1)}`;
      }
      lastTh = th || null;
      last = p.t;
    }
    endRun();
    for (const [t, v, th] of lone) {
      g.append(svg('circle', {
        class: `dot ${SF.reasonClass(r)}`, cx: X(t).toFixed(1), cy: Y(v).toFixed(1), r: 2.5,
        'data-reason': r, 'data-window': w, 'data-t': t,
      }));
      if (th) td += `M${(X(t) - 6).toFixed(1)} ${Y(th).toFixed(1)}L${(X(t) + 6).toFixed(1)} ${Y(th).toFixed(1)}`;
    }
    if (td) g.append(svg('path', { class: `threshold ${SF.reasonClass(r)}`, d: td, 'data-reason': r }));
    if (d) {
      g.append(svg('path', {
        class: `series ${SF.reasonClass(r)}`, d, 'data-reason': r, 'data-window': w,
        'data-values': JSON.stringify(values),
      }));
    }
  }
  return { g, X, Y, max };
}

function drawChart(tl) {
  const box = document.getElementById('chart');
  const legend = document.getElementById('legend');
  const note = document.getElementById('chart-note');
  SF.clear(box);
  SF.clear(legend);
  note.hidden = true;
  shown = null;
  if (!tl) {
    note.textContent = 'No history: this daemon sent no timeline for the host.';
    note.hidden = false;
    box.dataset.state = 'none';
    return;
  }
  const reasons = [];
  for (const p of tl.points || []) {
    for (const r of Object.keys(p.reasons || {})) if (!reasons.includes(r)) reasons.push(r);
  }
  reasons.sort((a, b) => SF.REASONS.indexOf(a) - SF.REASONS.indexOf(b));
  const s = svg('svg', {
    viewBox: `0 0 ${W} ${2 * H}`, class: 'plot', role: 'img',
    'aria-label': `distinct destinations of ${addr} over time`,
    'data-points': (tl.points || []).length, 'data-since': tl.since_ms, 'data-until': tl.until_ms,
    'data-slice': tl.slice_ms || 60000,
    /* the last point may be the reading now ("live"), not a slice's end */
    'data-live': ((tl.points || []).find((p) => p.live) || {}).t || '',
  });
  const top = panel(tl, 'short', reasons, 0);
  const bottom = panel(tl, 'long', reasons, H);
  s.append(top.g, bottom.g);
  const cursor = svg('line', { class: 'cursor', x1: 0, x2: 0, y1: MT, y2: 2 * H - MB, visibility: 'hidden' });
  s.append(cursor);
  box.append(s);
  box.dataset.state = (tl.points || []).length ? 'drawn' : 'empty';
  const readout = SF.el('p', { id: 'readout', class: 'readout' }, '\u00a0');
  box.append(readout);
  if (tl.stored === false) {
    /* the daemon keeps no history: the live reading is all there is */
    note.textContent = 'This daemon keeps no history ([history] dir is off): the chart holds ' +
      'the reading now only.';
    note.hidden = false;
  } else if (!(tl.points || []).length) {
    note.textContent = 'No measurements of this host in the range.';
    note.hidden = false;
  } else if (tl.points[0].t - (tl.slice_ms || 60000) > tl.since_ms) {
    note.textContent = `Its history begins at ${SF.time(tl.points[0].t)}: the axis starts there ` +
      '(a host is kept from a quarter of a threshold on).';
    note.hidden = false;
  }
  if (tl.truncated) {
    note.textContent = 'The series was cut short by the reply size limit: choose a shorter range.';
    note.hidden = false;
  }
  for (const r of reasons) {
    legend.append(SF.el('span', { class: `key ${SF.reasonClass(r)}` }, SF.el('i', {}), r));
  }
  shown = { tl, X: top.X, s, cursor, readout };
  s.addEventListener('mousemove', hover);
  s.addEventListener('mouseleave', () => cursor.setAttribute('visibility', 'hidden'));
}

/* the slice under the pointer, in words */
function hover(e) {
  if (!shown || !shown.tl.points.length) return;
  const rect = shown.s.getBoundingClientRect();
  const x = ((e.clientX - rect.left) / rect.width) * W;
  const pts = shown.tl.points;
  let best = 0;
  for (let i = 1; i < pts.length; i++) {
    if (Math.abs(shown.X(pts[i].t) - x) < Math.abs(shown.X(pts[best].t) - x)) best = i;
  }
  const p = pts[best];
  shown.cursor.setAttribute('x1', shown.X(p.t));
  shown.cursor.setAttribute('x2', shown.X(p.t));
  shown.cursor.setAttribute('visibility', 'visible');
  const parts = Object.entries(p.reasons || {}).map(([r, v]) =>
    `${r} ${v.short}/${v.short_threshold || '-'} short, ${v.long}/${v.long_threshold || '-'} long`);
  shown.readout.textContent = `${SF.time(p.t)}${p.live ? ' (now)' : ''}: ${p.flows} flows, ${p.attempts} attempts, ` +
    `${p.failed} failed; ${parts.join('; ') || 'no reason measured'}`;
}

function facts(h) {
  const ul = document.getElementById('facts');
  SF.clear(ul);
  const add = (text, cls) => ul.append(SF.el('li', { class: cls || null }, text));
  add(h.internal ? 'internal' : 'external');
  if (h.mail_server) add('listed mail server');
  if (h.sampling > 1) add(`sampled 1 in ${h.sampling}: values are estimates (how each is made: under the table)`);
  if (h.last_seen_ms) add(`last seen ${SF.ago(h.last_seen_ms, h.now_ms)}`);
  if (h.exporters && h.exporters.length) add(`seen by ${h.exporters.join(', ')}`);
  if (h.group) add(`group ${h.group.name} (${h.group.prefix})`);
  for (const s of h.suppressions || []) {
    add(`suppressed${s.reason ? ' for ' + s.reason : ''} until ${SF.time(s.until_ms)}: ${s.note || ''}`, 'warn');
  }
  if (h.signs && h.signs.mta_like) add(h.signs.hint || 'looks like a mail server', 'warn');
}

function reasonsTable(h) {
  const body = document.querySelector('#reasons tbody');
  SF.clear(body);
  for (const r of h.reasons || []) {
    if (!r.enabled && !r.offender) continue;
    const est = r.estimate || {};
    const o = r.offender;
    body.append(SF.el('tr', { 'data-reason': r.reason },
      SF.el('td', {}, SF.el('span', { class: `reason ${SF.reasonClass(r.reason)}` }, r.reason)),
      SF.valueCell(r.value.short, r.threshold.short, r.estimate ? est.short : null, (r.estimate_se || {}).short),
      SF.valueCell(r.value.long, r.threshold.long, r.estimate ? est.long : null, (r.estimate_se || {}).long),
      SF.el('td', { class: 'num' }, (r.level || 0).toFixed(2)),
      SF.el('td', {}, o ? SF.el('span', { class: `sev sev-${o.severity}` }, o.severity) : r.state || ''),
      SF.el('td', {}, o ? SF.time(o.raised_ms) : '-')));
  }
}

/* What the table's numbers cannot say by themselves, per reason (the same lines as
 * spamflowctl host's): why a reason over its threshold is not raised (the reply's "note":
 * smtp-blocked's failed share below its floor, so the host counts as smtp-fanout's, or
 * the other way round), and what smtp-novelty's columns hold. */
function reasonNotes(h) {
  const ul = document.getElementById('reason-notes');
  SF.clear(ul);
  for (const r of h.reasons || []) {
    if (!r.enabled && !r.offender) continue;
    const add = (text) => ul.append(SF.el('li', { 'data-reason': r.reason },
      SF.el('span', { class: `reason ${SF.reasonClass(r.reason)}` }, r.reason), `: ${text}`));
    if (r.window_s && r.value) {
      add(`Short is the destinations not contacted within the horizon, over the last ` +
        `${Math.round(r.window_s / 3600)} h; Long the port-25 long window's distinct (context)`);
    }
    if (r.note) add(r.note);
  }
  ul.hidden = !ul.firstChild;
}

/* How each of a sampled host's estimates was made, one line per reason and window with
 * something seen (the reply's estimate_basis; the same figures as spamflowctl host's
 * "estimate" lines): the items seen, those taken as failed attempts over the chance one was
 * sampled (and the share of them the servers refused), those taken as sessions of k
 * packets over theirs, and the estimate with its standard error. */
function basisList(h) {
  const box = document.getElementById('basis');
  const ul = box.querySelector('ul');
  SF.clear(ul);
  for (const r of h.reasons || []) {
    if (!r.estimate_basis || (!r.enabled && !r.offender)) continue;
    for (const span of ['short', 'long']) {
      const b = r.estimate_basis[span];
      if (!b || !(b.seen > 0)) continue;
      const phi = b.failed_share || 0;
      const parts = [];
      if (phi > 0) {
        parts.push(`${(b.seen * phi).toFixed(1)} failed attempts / p ${b.p_failed.toFixed(3)} ` +
          `(${Math.round(100 * (b.refused_share || 0))}% refused)`);
      }
      if (phi < 1) {
        parts.push(`${(b.seen * (1 - phi)).toFixed(1)} sessions of ${b.session_packets.toFixed(1)} ` +
          `packets / p ${b.p_session.toFixed(3)}`);
      }
      const est = Math.round((r.estimate || {})[span] || 0);
      const se = Math.round((r.estimate_se || {})[span] || 0);
      ul.append(SF.el('li', { 'data-reason': r.reason, 'data-span': span },
        SF.el('span', { class: `reason ${SF.reasonClass(r.reason)}` }, r.reason),
        ` ${span}: ${b.seen} seen = ${parts.join(' + ')} \u2192 ${est}\u00b1${se}`));
    }
  }
  box.hidden = !ul.firstChild;
}

/* the evidence file of the host's last alert (raised and updated alerts have one), from
 * the daemon's list of the host's files (/api/evidence: the alert objects do not carry the
 * file name), and the older ones */
function evidence(list) {
  const p = document.getElementById('evidence');
  SF.clear(p);
  if (!list.enabled) {
    p.append('Evidence files are off: set [evidence] dir to keep the flows behind each alert.');
    return;
  }
  const files = list.files || [];
  if (!files.length) {
    p.append('No evidence file for this host (written for raised and updated alerts; pruned by age and size).');
    return;
  }
  const link = (f, id) => SF.el('a', { id, href: `/evidence/${encodeURIComponent(f.name)}`, download: f.name }, f.name);
  const f = files[0];
  p.append(link(f, 'evidence-link'),
    ` \u2014 the flows behind its last ${f.reason} alert (${SF.time(f.mtime_ms)}, ${f.bytes} bytes), ` +
    'an IPFIX file: open it with Wireshark or tshark -r.');
  if (files.length > 1) {
    const older = SF.el('ul', { class: 'older' });
    for (const o of files.slice(1, 6)) older.append(SF.el('li', {}, link(o, null), ` (${o.reason})`));
    if (list.total > 6) older.append(SF.el('li', {}, `and ${list.total - 6} more in the evidence directory`));
    p.append(older);
  }
}

function timelineTable(tl) {
  const body = document.querySelector('#timeline tbody');
  SF.clear(body);
  const rows = [];
  for (const e of (tl && tl.events) || []) {
    const ws = e.windows || [];
    const wtxt = ws.map((w, i) => `${i ? 'long' : 'short'} ${w.value}/${w.threshold}${w.estimated ? '~' : ''}`).join(', ');
    const detail = SF.el('td', {}, `${wtxt}; ${e.attempts} attempts, ${Math.round(100 * (e.failed_share || 0))}% failed`);
    rows.push([e.time_ms, SF.el('tr', { class: `ev-${e.event}` },
      SF.el('td', {}, SF.time(e.time_ms)), SF.el('td', {}, e.event),
      SF.el('td', {}, SF.el('span', { class: `reason ${SF.reasonClass(e.reason)}` }, e.reason)),
      SF.el('td', {}, SF.el('span', { class: `sev sev-${e.severity}` }, e.severity)), detail)]);
  }
  for (const a of (tl && tl.actions) || []) {
    rows.push([a.time_ms, SF.el('tr', { class: 'action' },
      SF.el('td', {}, SF.time(a.time_ms)), SF.el('td', {}, a.action),
      SF.el('td', {}, a.reason || '-'), SF.el('td', {}, ''),
      SF.el('td', {}, `${a.detail || ''}${a.uid !== null && a.uid !== undefined ? ` (uid ${a.uid})` : ''}`))]);
  }
  rows.sort((a, b) => b[0] - a[0]);
  body.append(...rows.map((r) => r[1]));
  document.getElementById('timeline-empty').hidden = rows.length > 0;
}

function topTables(h) {
  const box = document.getElementById('top');
  SF.clear(box);
  for (const w of h.windows || []) {
    if (!w.top || !w.top.length) continue;
    const t = SF.el('table', { class: 'grid top', 'data-traffic': w.traffic },
      SF.el('caption', {}, `${w.traffic}: ${w.long.distinct}${w.long.estimated ? '~' : ''} distinct in the long window, ${w.short.distinct} in the short`),
      SF.el('thead', {}, SF.el('tr', {}, SF.el('th', {}, 'Destination'), SF.el('th', { class: 'num' }, 'Flows'),
        SF.el('th', {}, 'Country'), SF.el('th', {}, 'ASN'))));
    const tb = SF.el('tbody');
    for (const d of w.top) {
      tb.append(SF.el('tr', {}, SF.el('td', {}, d.addr), SF.el('td', { class: 'num' }, d.count),
        SF.el('td', {}, d.country || '-'), SF.el('td', {}, d.asn ? `AS${d.asn}` : '-')));
    }
    t.append(tb);
    box.append(t);
  }
  if (!box.firstChild) box.append(SF.el('p', { class: 'empty' }, 'No destinations held now (the windows are empty).'));
}

async function load() {
  clearTimeout(timer);
  const base = `/api/host/${encodeURIComponent(addr)}`;
  try {
    let h;
    try {
      h = await SF.getJSON(`${base}?since=${since}`);
    } catch (e) {
      /* a daemon without a history store: the live windows only */
      if (e.status !== 400) throw e;
      h = await SF.getJSON(base);
    }
    const ev = await SF.getJSON(`/api/evidence?host=${encodeURIComponent(addr)}`);
    facts(h);
    drawChart(h.timeline || null);
    reasonsTable(h);
    reasonNotes(h);
    basisList(h);
    evidence(ev);
    timelineTable(h.timeline);
    topTables(h);
    SF.status(`updated ${SF.time(h.now_ms)}`, false);
    document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
  } catch (e) {
    SF.status(e.status === 404 ? `nothing is held about ${addr}` : `cannot read ${base}: ${e.message}`, true);
  }
  timer = setTimeout(load, REFRESH_MS);
}

document.getElementById('addr').textContent = addr;
document.title = `spamflow: ${addr}`;
for (const b of document.querySelectorAll('#range button')) {
  b.classList.toggle('on', b.dataset.since === since);
  b.addEventListener('click', () => {
    since = b.dataset.since;
    for (const x of document.querySelectorAll('#range button')) x.classList.toggle('on', x === b);
    history.replaceState(null, '', `#since=${since}`);
    load();
  });
}
load();
