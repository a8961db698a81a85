// bench/http_scrape.py's open page (issue 16): headless chromium (Debian's, through
// playwright-core from tests/web/node_modules: `npm ci` there, scripts/setup.sh test) with
// the offenders page (/, refreshing every 5 s) in one tab and, as soon as the table has a
// host, that host's page (/host/ADDR, 24 h, refreshing every 10 s) in another: what an admin
// leaves open. Prints {"ready":true} once the offenders page has loaded, then runs until its
// standard input closes and prints {"requests":N,"by_path":{...},"host":ADDR,"errors":[...]}.
// usage: node page_open.mjs BASE_URL
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', 'tests', 'web', 'package.json'));
const { chromium } = require('playwright-core');
const base = process.argv[2];
const res = { requests: 0, by_path: {}, host: null, errors: [] };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
const ctx = await browser.newContext();
ctx.on('request', (r) => {
  const p = new URL(r.url()).pathname.replace(/^\/(host|api\/host)\/.*/, '/$1/ADDR');
  res.requests++;
  res.by_path[p] = (res.by_path[p] || 0) + 1;
});
const list = await ctx.newPage();
list.on('console', (m) => m.type() === 'error' && res.errors.push(m.text()));
await list.goto(base + '/');
await list.waitForSelector('body[data-loaded]', { timeout: 30000 });
process.stdout.write(JSON.stringify({ ready: true }) + '\n');

let done = false;
const rl = createInterface({ input: process.stdin });
rl.on('close', () => { done = true; });
while (!done && res.host === null) {
  const h = await list.$eval('#offenders tbody tr', (tr) => tr.dataset.host).catch(() => null);
  if (h) {
    res.host = h;
    const hp = await ctx.newPage();
    hp.on('console', (m) => m.type() === 'error' && res.errors.push(m.text()));
    await hp.goto(`${base}/host/${h}`);
  } else {
    await new Promise((r) => setTimeout(r, 500));
  }
}
while (!done) await new Promise((r) => setTimeout(r, 200));
await browser.close();
process.stdout.write(JSON.stringify(res) + '\n');
