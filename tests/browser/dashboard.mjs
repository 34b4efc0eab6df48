// dashboard.mjs: the headroomd dashboard in a real browser (Debian's chromium, driven by
// playwright-core): the key prompt, the page and its charts, load and unload from the page, a
// running generation followed by the charts, and (--pressure) a hog's pressure shown as an event.
// usage: node dashboard.mjs URL KEY MODEL SCREENSHOT_DIR [--pressure HOG_COMMAND...]
// Prints "ok - ..." / "not ok - ..." lines; exits 1 when a check failed.
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';

const [url, key, model, shots, mode, ...hogCommand] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });
let failed = 0;
function check(name, ok, detail = '') {
  if (ok) console.log(`ok - ${name}`);
  else { failed++; console.log(`not ok - ${name}${detail ? '\n  ' + detail : ''}`); }
}
const api = (path, body) => fetch(url + path, {
  method: body ? 'POST' : 'GET',
  headers: { Authorization: 'Bearer ' + key, 'Content-Type': 'application/json' },
  body: body ? JSON.stringify(body) : undefined,
});
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));
async function until(what, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try { const v = await what(); if (v) return v; } catch (e) { /* not yet */ }
    if (Date.now() > deadline) return null;
    await sleep(100);
  }
}

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
                                        args: ['--no-sandbox', '--disable-gpu'] });
const errors = [], outside = [];
const page = await browser.newPage({ viewport: { width: 1280, height: 1400 } });
page.on('pageerror', e => errors.push(String(e)));
page.on('request', r => { if (!r.url().startsWith(url)) outside.push(r.url()); });

try {
  // ---- the key prompt ----------------------------------------------------------------------
  await page.goto(url + '/');
  const prompt = await until(() => page.isVisible('#key-panel'), 5000);
  check('without a key the page asks for one', !!prompt);
  check('the key field has focus, so typing goes there', await page.evaluate(() => document.activeElement && document.activeElement.id === 'key-input'));
  await page.keyboard.type('not-the-key');
  await page.keyboard.press('Enter');
  const refused = await until(async () => (await page.isVisible('#key-panel')) && /refused/.test(await page.textContent('#key-error')), 5000);
  check('a wrong key is refused with a sentence and asked again', !!refused, await page.textContent('#key-error'));
  await page.fill('#key-input', key);
  await page.keyboard.press('Enter');
  const accepted = await until(async () => !(await page.isVisible('#key-panel')) && (await page.locator(`#models tr[data-model="${model}"]`).count()) === 1, 30000);   // generous: a busy machine (the page polls, the server samples)
  check('with the right key the page reads the API (the model is listed)', !!accepted);
  const level = await until(async () => { const t = await page.textContent('#level'); return /^(normal|warn|critical)$/.test(t) && t; }, 5000);
  check('the pressure level is shown', !!level, `level: ${await page.textContent('#level')}`);
  check('the key is kept for the session only (sessionStorage)', await page.evaluate(k => sessionStorage.getItem('headroom-api-key') === k && !localStorage.length, key));
  await page.reload();
  await sleep(1500);
  check('a reload in the same session needs no key again', !(await page.isVisible('#key-panel')));

  // ---- history and charts ------------------------------------------------------------------
  const points = await until(async () => Number(await page.getAttribute('#chart-available polyline', 'data-count')) >= 2, 10000);
  check('a freshly opened page charts the samples the server kept', !!points);
  const bands = await page.locator('#chart-available rect.band-warn, #chart-available rect.band-critical').count();
  check('the available-memory chart draws the warn and critical bands', bands === 2);

  // ---- load and unload from the page -------------------------------------------------------
  const stateOf = async () => (await (await api('/api/memory')).json()).models.find(m => m.name === model).state;
  if ((await stateOf()) !== 'unloaded') await api('/api/unload', { model });
  await until(async () => (await page.getAttribute(`#models tr[data-model="${model}"]`, 'data-state')) === 'unloaded', 5000);
  // by keyboard: focus the Load button and press Enter, as a person without a mouse would
  await page.focus(`button[aria-label="load ${model}"]`);
  await page.keyboard.press('Enter');
  const loaded = await until(async () => (await stateOf()) === 'ready' &&
    (await page.getAttribute(`#models tr[data-model="${model}"]`, 'data-state')) === 'ready', 60000);
  check('Load (by keyboard) loads the model and the table says so', !!loaded, `server: ${await stateOf()}`);
  const loadEvent = await until(() => page.locator('#events li[data-action="loaded"]').count(), 5000);
  check('the load shows in the events with its reason', !!loadEvent);
  await page.click(`button[aria-label="unload ${model}"]`);
  const unloaded = await until(async () => (await stateOf()) === 'unloaded' &&
    (await page.getAttribute(`#models tr[data-model="${model}"]`, 'data-state')) === 'unloaded', 30000);
  check('Unload unloads the model and the table says so', !!unloaded, `server: ${await stateOf()}`);
  const unloadText = await until(async () => { const l = page.locator('#events li[data-action="unloaded"]'); return (await l.count()) && l.first().textContent(); }, 5000);
  check('the unload shows in the events with its reason and the bytes freed', !!unloadText && /freed|taken|unload/.test(unloadText), unloadText || '');
  await page.selectOption(`select[aria-label="how long to keep ${model} loaded"]`, '-1');
  await page.click(`button[aria-label="keep ${model} loaded"]`);
  const kept = await until(async () => { const m = (await (await api('/api/memory')).json()).models.find(x => x.name === model); return m.state === 'ready' && m.expires_at === 0; }, 60000);
  check('keep loaded for ever loads it with no deadline', !!kept);

  if (mode !== '--pressure') {
    // ---- a running generation followed by the charts ---------------------------------------
    const abort = new AbortController();
    const generation = fetch(url + '/api/generate', {
      method: 'POST', signal: abort.signal, headers: { Authorization: 'Bearer ' + key },
      body: JSON.stringify({ model, prompt: 'Once upon a time', options: { num_predict: -1, temperature: 0 } }),
    }).then(async r => { const reader = r.body.getReader(); for (;;) { const { done } = await reader.read(); if (done) break; } })
      .catch(() => {});
    const running = await until(async () => /generating/.test(await page.textContent('#running')), 60000);
    check('the running generation is listed, generating', !!running, await page.textContent('#running'));
    const speed = await until(async () => Number(await page.getAttribute('#chart-tokens polyline', 'data-last')) > 0, 30000);
    check('the tokens/s chart\'s last point rises with the generation', !!speed);
    const before = Number(await page.getAttribute('#chart-tokens polyline', 'data-last-time'));
    await sleep(2500);
    const after = Number(await page.getAttribute('#chart-tokens polyline', 'data-last-time'));
    const last = Number(await page.getAttribute('#chart-tokens polyline', 'data-last'));
    check('the chart keeps adding points while it runs, above zero', after > before && last > 0, `last point at ${before} -> ${after}, value ${last}`);
    check('the running row shows tokens/s and the model\'s memory', /tokens\/s/.test(await page.textContent('#running')) && /[KMG]iB/.test(await page.textContent('#running')));
    await page.screenshot({ path: `${shots}/dashboard-generation.png`, fullPage: true });
    // cancel: the client hangs up, as a person pressing Ctrl-C would
    abort.abort();
    await generation;
    const stopped = await until(async () => (await (await api('/api/active')).json()).length === 0, 10000);
    check('hanging up ends the generation on the server', !!stopped);
  } else {
    // ---- a hog in the server's cgroup: pressure shown as an event with its reason ------------
    const seen = [];
    const events = await fetch(url + '/api/events', { headers: { Authorization: 'Bearer ' + key } });
    const reader = events.body.getReader();
    (async () => {
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read().catch(() => ({ done: true }));
        if (done) break;
        buffer += new TextDecoder().decode(value);
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end); buffer = buffer.slice(end + 2);
          if (/^event: pressure/m.test(block) && /"previous"/.test(block)) seen.push({ at: Date.now(), block });
        }
      }
    })();
    const hog = spawn(hogCommand[0], hogCommand.slice(1), { stdio: 'ignore' });
    const event = await until(() => seen.length > 0 && seen[0], 60000);
    check('the hog raises the pressure level (seen on /api/events)', !!event);
    if (event) {
      const shown = await until(async () => (await page.locator('#events li[data-type="pressure"]').count()) > 0 && Date.now(), 5000);
      const lag = shown ? (shown - event.at) / 1000 : NaN;
      check(`the page shows the pressure event within a second of the server sending it (${lag.toFixed(2)} s)`, shown && lag <= 1, `after ${lag} s`);
      const text = await page.textContent('#events li[data-type="pressure"]');
      check('the event says the level and its reason', /(warn|critical)/.test(text) && /available|stall|swap/.test(text), text);
      check('the pressure timeline has a warn or critical stripe', await until(() => page.locator('#timeline .warn, #timeline .critical').count(), 5000) > 0);
      await until(() => page.locator('#events li[data-action="unloaded"], #events li[data-action="caches_freed"]').count(), 10000);
      await page.screenshot({ path: `${shots}/dashboard-pressure.png`, fullPage: true });
    }
    hog.kill('SIGKILL');
    await reader.cancel().catch(() => {});
  }

  // ---- recent generations in words ---------------------------------------------------------
  await page.emulateMedia({ colorScheme: 'dark' });
  await sleep(1200);
  if (mode !== '--pressure') {
    const words = await until(async () => /cancelled|completed/.test(await page.textContent('#generations')), 30000);
    const table = await page.textContent('#generations');
    check('recent generations say the outcome in words, never a code', !!words && !/HR_[A-Z]/.test(table), table.slice(0, 300));
    check('time to first token and speed are in words', /\d (ms|s)(?!\/)/.test(table) && /tokens/.test(table));
  }
  const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  check('dark mode (prefers-color-scheme) gives a dark page', /rgb\((\d+), (\d+), (\d+)\)/.test(background) && Number(background.match(/\d+/)[0]) < 60, background);
  await page.screenshot({ path: `${shots}/dashboard-${mode === '--pressure' ? 'pressure-' : ''}dark.png`, fullPage: true });
  check('the page loaded nothing from outside the server', outside.length === 0, outside.join(' '));
  check('no script error on the page', errors.length === 0, errors.join('; '));
} catch (e) {
  check('the browser test ran to its end', false, String(e && e.stack || e));
} finally {
  await browser.close();
}
console.log(failed ? `${failed} failed` : 'all passed');
process.exit(failed ? 1 : 0);
