/* The offenders page (/): /api/offenders as a table, refreshed every 5 s. Each host links
 * to its page (/host/ADDR). The columns are spamflowctl offenders'. */
'use strict';

const REFRESH_MS = 5000;

function row(o, now) {
  const ev = o.event || {};
  const cur = o.now;
  const ws = ev.windows || [];
  const th = (i) => (ws[i] ? ws[i].threshold : 0);
  const reason = SF.el('td', {}, SF.el('span', { class: `reason ${SF.reasonClass(o.reason)}` }, o.reason));
  if (o.suppressed_until_ms !== null && o.suppressed_until_ms !== undefined) {
    reason.append(SF.el('span', { class: 'tag', title: 'raised before its host was suppressed: kept until it clears' }, 'suppressed'));
  }
  const tr = SF.el('tr', { 'data-host': o.host, 'data-reason': o.reason },
    SF.el('td', {}, SF.el('span', { class: `sev sev-${o.severity}` }, o.severity)),
    reason,
    SF.el('td', {}, SF.el('a', { href: `/host/${encodeURIComponent(o.host)}` }, o.host)));
  let attempts, failedShare, last;
  if (cur) {
    /* the windows now, against the thresholds of the last event; sampled: the estimates */
    const sampled = cur.short_estimate !== undefined;
    tr.append(SF.valueCell(cur.short, th(0), sampled ? cur.short_estimate : null, cur.short_estimate_se));
    tr.append(SF.valueCell(cur.long, th(1), sampled ? cur.long_estimate : null, cur.long_estimate_se));
    attempts = cur.attempts;
    failedShare = cur.attempts > 0 ? cur.failed / cur.attempts : 0;
    last = cur.last_seen_ms;
  } else {
    for (const i of [0, 1]) {
      const w = ws[i] || { value: 0, threshold: 0 };
      tr.append(SF.valueCell(w.value, w.threshold, null, null));
    }
    attempts = ev.attempts || 0;
    failedShare = ev.failed_share || 0;
    last = ev.last_seen_ms;
  }
  tr.append(SF.el('td', { class: 'num' }, String(attempts)));
  tr.append(SF.el('td', { class: 'num' }, `${Math.round(100 * failedShare)}%`));
  tr.append(SF.el('td', { title: SF.time(ev.first_seen_ms) }, SF.ago(ev.first_seen_ms, now)));
  tr.append(SF.el('td', { title: SF.time(last) }, SF.ago(last, now)));
  const hint = SF.el('td', { class: 'hint' });
  if (ev.mta_like) {
    hint.append(SF.el('span', {
      class: 'tag mta',
      title: `inbound SMTP: ${ev.inbound_smtp || 0} sessions in the last hour; if it is a mail server, list it in [analyzer] mail_servers`,
    }, 'looks like a mail server'));
  }
  if (ev.dns_corroborated) {
    hint.append(SF.el('span', { class: 'tag', title: 'external DNS to ' + (ev.dns_server || '?') }, 'external DNS'));
  }
  tr.append(hint);
  return tr;
}

async function refresh() {
  try {
    const r = await SF.getJSON('/api/offenders');
    const body = document.querySelector('#offenders tbody');
    const rows = r.offenders.map((o) => row(o, r.now_ms));
    SF.clear(body);
    body.append(...rows);
    document.getElementById('empty').hidden = rows.length > 0;
    document.getElementById('offenders').hidden = rows.length === 0;
    const more = r.shown < r.total ? ` (${r.shown} of ${r.total} shown)` : '';
    document.getElementById('count').textContent = `${rows.length}${more}`;
    SF.status(`updated ${SF.time(r.now_ms)}`, false);
    document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
  } catch (e) {
    SF.status(`cannot read /api/offenders: ${e.message}`, true);
  }
  setTimeout(refresh, REFRESH_MS);
}

refresh();
