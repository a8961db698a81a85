// The browser half of tests/system/web_browser.py and host_sampled.py: Debian's chromium,
// headless, driven by playwright-core (tests/web/node_modules, `npm ci` by scripts/setup.sh
// test; no browser is downloaded). It starts the browser at once (slow under load) and
// prints {"ready":true}; then reads one JSON line on stdin, {"base": URL, "host": ADDR,
// "since": "1h", "out": DIR, "also": [ADDR...]} (since and also optional), and answers one
// JSON line on stdout with what the pages showed:
//   rows: the offenders table ([host, reason] per row); host page: the chart's state, its
//   series (reason, window, [[t, value]...]) and time range, the evidence link, the bytes
//   downloaded through it (saved under out); console errors and warnings, CSP violations,
//   page errors, failed requests; the screenshots' paths; the host page's facts and the
//   estimate lines of a sampled host (basis), and the same for each address in "also"
//   (opened by its address after the first host); the chart's panel titles and dots, and
//   last the dots of the host's reply cut to one stored slice (lone).
// SPAMFLOW_WEB_SAMPLE=FILE answers /api/host/* with FILE (a hand-made reply following the
// timeline contract) instead of the daemon's: for working on the page without a history.
import { chromium } from 'playwright-core';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import path from 'node:path';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

// the host page's notes under its reasons table, and its estimate lines (a sampled host's):
// hidden, and per line its reason, span and text as shown
async function basisOf(page) {
  return page.evaluate(() => {
    const box = document.getElementById('basis');
    const notes = document.getElementById('reason-notes');
    return {
      notes: notes.hidden ? [] : [...notes.querySelectorAll('li')].map((li) => li.textContent),
      hidden: box.hidden,
      lines: [...box.querySelectorAll('li')].map((li) => ({
        reason: li.dataset.reason, span: li.dataset.span, text: li.textContent,
        visible: li.offsetParent !== null,
      })),
    };
  });
}
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  // root in a container: no user namespace sandbox
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  timeout: 30000,
});
out({ ready: true });

const rl = createInterface({ input: process.stdin });
const line = await new Promise((resolve) => rl.once('line', resolve));
rl.close();
const job = JSON.parse(line);
const res = { console: [], csp: [], pageErrors: [], failed: [], shots: [] };
try {
  const ctx = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
  // reported by the page itself too (the console line is the browser's)
  await ctx.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__csp.push(`${e.violatedDirective}: ${e.blockedURI} (${e.sourceFile}:${e.lineNumber})`);
    });
  });
  // each /api/host/ reply the page is given, as given (the page's notes and estimate lines
  // are checked against the reply it rendered: a refresh may bring newer numbers)
  let hostReply = null;
  let cutReply = null; // when set (the last step), every /api/host/ reply is this one
  if (process.env.SPAMFLOW_WEB_SAMPLE) {
    const sample = readFileSync(process.env.SPAMFLOW_WEB_SAMPLE);
    await ctx.route('**/api/host/**', (r) => {
      hostReply = JSON.parse(sample);
      return r.fulfill({ status: 200, contentType: 'application/json', body: sample });
    });
  } else {
    await ctx.route('**/api/host/**', async (r) => {
      if (cutReply) return r.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(cutReply) });
      const resp = await r.fetch();
      const body = await resp.text();
      if (resp.status() === 200) hostReply = JSON.parse(body);
      await r.fulfill({ response: resp, body });
    });
  }
  const page = await ctx.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') res.console.push(`${m.type()}: ${m.text()}`);
    if (/Content Security Policy/i.test(m.text())) res.csp.push(m.text());
  });
  page.on('pageerror', (e) => res.pageErrors.push(String(e)));
  page.on('requestfailed', (r) => {
    // a download ends its navigation request: not a failure
    if (!r.url().includes('/evidence/')) res.failed.push(`${r.url()}: ${r.failure() && r.failure().errorText}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400) res.failed.push(`${r.url()}: HTTP ${r.status()}`);
  });

  // the offenders page: wait for its first refresh
  await page.goto(job.base + '/', { waitUntil: 'load' });
  await page.waitForSelector('body[data-loaded]', { timeout: 15000 });
  res.rows = await page.$$eval('#offenders tbody tr', (trs) =>
    trs.map((tr) => [tr.dataset.host, tr.dataset.reason, [...tr.cells].map((c) => c.textContent)]));
  res.status = await page.textContent('#status');
  const shot1 = path.join(job.out, 'web-offenders.png');
  await page.screenshot({ path: shot1, fullPage: true });
  res.shots.push(shot1);
  res.csp.push(...(await page.evaluate(() => window.__csp)));

  // one host: follow its link from the table, as a person would
  await page.click(`#offenders tbody tr[data-host="${job.host}"] a`);
  await page.waitForURL(`**/host/${job.host}`);
  await page.waitForSelector('body[data-loaded]', { timeout: 15000 });
  if (job.since) {
    const n = Number(await page.getAttribute('body', 'data-loaded'));
    await page.click(`#range button[data-since="${job.since}"]`);
    await page.waitForFunction((k) => Number(document.body.dataset.loaded) > k, n, { timeout: 15000 });
  }
  res.url = page.url();
  res.chart = await page.evaluate(() => {
    const box = document.getElementById('chart');
    const s = box.querySelector('svg');
    const series = [...box.querySelectorAll('path.series')].map((p) => ({
      reason: p.dataset.reason, window: p.dataset.window, values: JSON.parse(p.dataset.values),
      d: p.getAttribute('d').length,
    }));
    const titles = [...box.querySelectorAll('.ptitle')].map((t) => t.textContent);
    const dots = [...box.querySelectorAll('circle.dot')].map((c) => [
      c.dataset.reason, c.dataset.window, Number(c.dataset.t)]);
    const r = s ? s.getBoundingClientRect() : null;
    return {
      dots, titles, slice_ms: s && s.dataset.slice ? Number(s.dataset.slice) : 0,
      state: box.dataset.state, points: s ? Number(s.dataset.points) : 0,
      since: s ? Number(s.dataset.since) : 0, until: s ? Number(s.dataset.until) : 0,
      live: s && s.dataset.live ? Number(s.dataset.live) : null,
      series, width: r ? r.width : 0, height: r ? r.height : 0,
      note: document.getElementById('chart-note').hidden ? '' : document.getElementById('chart-note').textContent,
    };
  });
  res.timelineRows = await page.$$eval('#timeline tbody tr', (trs) => trs.length);
  res.basis = await basisOf(page);
  res.hostReply = hostReply;
  res.facts = await page.$$eval('#facts li', (lis) => lis.map((li) => li.textContent));
  res.top = await page.$$eval('#top tbody tr', (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
  // (no link: evidence off or none for the host; getAttribute() would wait 30 s for one)
  const link = await page.$('#evidence-link');
  res.evidenceHref = link ? await link.getAttribute('href') : null;
  // the screenshot with the pointer on the chart's last slice (the readout filled in)
  const b = await page.locator('#chart svg').boundingBox().catch(() => null);
  if (b) await page.mouse.move(b.x + b.width * 0.97, b.y + b.height * 0.3);
  const shot2 = path.join(job.out, 'web-host.png');
  await page.screenshot({ path: shot2, fullPage: true });
  res.shots.push(shot2);
  res.csp.push(...(await page.evaluate(() => window.__csp)));

  // more hosts' pages, opened by their address (job.also): their facts and estimate lines
  res.also = {};
  for (const a of job.also || []) {
    await page.goto(`${job.base}/host/${encodeURIComponent(a)}`, { waitUntil: 'load' });
    await page.waitForSelector('body[data-loaded]', { timeout: 15000 });
    res.also[a] = {
      basis: await basisOf(page),
      hostReply,
      facts: await page.$$eval('#facts li', (lis) => lis.map((li) => li.textContent)),
    };
    const shot = path.join(job.out, `web-host-${a.replace(/[^0-9a-f.]/gi, '_')}.png`);
    await page.screenshot({ path: shot, fullPage: true });
    res.shots.push(shot);
    res.csp.push(...(await page.evaluate(() => window.__csp)));
  }

  // the evidence link, clicked: a download (Content-Disposition: attachment)
  if (res.evidenceHref) {
    const [dl] = await Promise.all([page.waitForEvent('download', { timeout: 15000 }), page.click('#evidence-link')]);
    const saved = path.join(job.out, 'web-evidence-' + dl.suggestedFilename());
    await dl.saveAs(saved);
    res.download = { name: dl.suggestedFilename(), path: saved, failure: await dl.failure() };
  }
  // last: the chart of the reply the host page had, cut to one stored slice (the live
  // reading dropped): a host's history of one point, as a host raised this minute has. Each
  // of its values has no neighbour, so the page draws a dot for each (res.lone)
  if (hostReply && hostReply.timeline && !process.env.SPAMFLOW_WEB_SAMPLE) {
    const cut = JSON.parse(JSON.stringify(hostReply));
    const stored = cut.timeline.points.filter((p) => !p.live);
    cut.timeline.points = stored.slice(-1);
    cutReply = cut;
    await page.goto(`${job.base}/host/${encodeURIComponent(job.host)}`, { waitUntil: 'load' });
    await page.waitForSelector('body[data-loaded]', { timeout: 15000 });
    res.lone = await page.evaluate(() => ({
      dots: [...document.querySelectorAll('#chart circle.dot')].map((c) => [
        c.dataset.reason, c.dataset.window, Number(c.dataset.t)]),
      lines: [...document.querySelectorAll('#chart path.series')].filter((p) => /L/.test(p.getAttribute('d'))).length,
    }));
    res.lone.points = cut.timeline.points;
    const shot = path.join(job.out, 'web-host-one-slice.png');
    await page.screenshot({ path: shot, fullPage: true });
    res.shots.push(shot);
  }
  await ctx.close();
} catch (e) {
  res.error = String(e && e.stack ? e.stack : e);
}
await browser.close();
out(res);
