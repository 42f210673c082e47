#!/usr/bin/env node
// Browser test of the demo shop page against a live gateway (playwright-core + Debian chromium).
//
//   GATEWAY_URL=http://127.0.0.1:8123 HASHID=shop UPLOAD_IMAGE=photo.jpg ARTIFACT_DIR=test-artifacts \
//     node tests/browser/demo.spec.mjs
//
// Optional: CHROMIUM_PATH (default /usr/bin/chromium), DEMO_RPP (results per page the page is
// opened with, default 6, so small catalogs still have several pages), TEST_TIMEOUT_MS (whole
// script, default 55000), HEADFUL=1.
// Exit status: 0 passed, 1 a check failed, 2 bad environment (missing variables, no browser).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const env = process.env;
const GATEWAY_URL = (env.GATEWAY_URL || "").replace(/\/+$/, "");
const HASHID = env.HASHID || "";
const UPLOAD_IMAGE = env.UPLOAD_IMAGE || "";
const ARTIFACT_DIR = path.resolve(env.ARTIFACT_DIR || "test-artifacts");
const CHROMIUM = env.CHROMIUM_PATH || "/usr/bin/chromium";
const RPP = Number.parseInt(env.DEMO_RPP || "6", 10);
const TOTAL_MS = Number.parseInt(env.TEST_TIMEOUT_MS || "55000", 10);
const STEP_MS = 15000;
const FIRST_SEARCH_MS = 30000; // the first search may load the embedding model

const started = Date.now();
let currentStep = "start";
const log = (msg) => console.log(`[demo.spec ${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);

class CheckFailed extends Error {}
function check(cond, message) {
  if (!cond) throw new CheckFailed(message);
}
function bail(code, message) {
  console.error(`demo.spec: ${message}`);
  process.exit(code);
}

for (const [name, value] of [["GATEWAY_URL", GATEWAY_URL], ["HASHID", HASHID], ["UPLOAD_IMAGE", UPLOAD_IMAGE]]) {
  if (!value) bail(2, `${name} is required (GATEWAY_URL, HASHID, UPLOAD_IMAGE; optional ARTIFACT_DIR)`);
}
if (!fs.existsSync(UPLOAD_IMAGE) || !fs.statSync(UPLOAD_IMAGE).isFile()) bail(2, `UPLOAD_IMAGE ${UPLOAD_IMAGE} is not a file`);
if (!fs.existsSync(CHROMIUM)) bail(2, `no browser at ${CHROMIUM}: run scripts/setup-browser.sh (or set CHROMIUM_PATH)`);
let chromium;
try {
  ({ chromium } = await import("playwright-core"));
} catch {
  bail(2, "playwright-core is not installed: run scripts/setup-browser.sh");
}
fs.mkdirSync(ARTIFACT_DIR, { recursive: true });

const watchdog = setTimeout(() => {
  console.error(`demo.spec: FAILED: timed out after ${TOTAL_MS} ms (during step: ${currentStep})`);
  process.exit(1);
}, TOTAL_MS);

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "demo-spec-chromium-"));
let context;
let page;
const pageErrors = [];
const consoleErrors = [];
/** Every API call the page made: {method, url, status, json} */
const apiCalls = [];

const tid = (id) => `[data-testid="${id}"]`;

async function step(name, fn) {
  currentStep = name;
  log(`${name} …`);
  const out = await fn();
  check(pageErrors.length === 0, `uncaught error in the page: ${pageErrors.join(" | ")}`);
  return out;
}

/** Run `action`, wait for the page's next API response on `endpoint`, then for the UI to settle. */
async function apiRoundTrip(endpoint, action, timeout = STEP_MS) {
  const before = apiCalls.length;
  const responded = page.waitForResponse((r) => r.url().includes(`/6/`) && r.url().includes(endpoint), { timeout });
  responded.catch(() => {}); // if the action throws, this must not become an unhandled rejection
  await action();
  const res = await responded;
  await page.waitForFunction(() => {
    const loading = document.querySelector('[data-testid="loading"]');
    return loading && loading.hidden;
  }, null, { timeout });
  // The page may retry (e.g. dropping a facet the engine lacks); use the last response.
  await page.waitForTimeout(50);
  const call = apiCalls.slice(before).filter((c) => c.url.includes(endpoint)).pop();
  const errorText = (await page.locator(tid("error")).isVisible()) ? await page.locator(tid("error")).innerText() : "";
  check(!errorText, `the page shows an error after ${endpoint}: "${errorText}" (HTTP ${call?.status ?? res.status()})`);
  check(res.status() === 200 || call?.status === 200, `${endpoint} answered HTTP ${res.status()}`);
  return call;
}

async function grid() {
  return page.locator(tid("result")).evaluateAll((els) => els.map((e) => ({
    dfid: e.getAttribute("data-dfid"),
    score: e.querySelector('[data-testid="result-score"]')?.textContent ?? "",
    price: e.querySelector('[data-testid="result-price"]')?.textContent ?? "",
    title: e.querySelector('[data-testid="result-title"]')?.textContent ?? "",
  })));
}
async function total() {
  return Number(await page.locator(tid("total")).getAttribute("data-total"));
}
async function pageInfo() {
  const el = page.locator(tid("page-info"));
  return { text: await el.innerText(), page: Number(await el.getAttribute("data-page")), pages: Number(await el.getAttribute("data-pages")) };
}
/** All term options shown: {field, value, count, selected} */
async function facetOptions() {
  return page.locator(`${tid("facets")} fieldset`).evaluateAll((sets) => sets.flatMap((set) =>
    [...set.querySelectorAll('[data-testid="facet-option"]')].map((o) => ({
      field: set.getAttribute("data-field"),
      value: o.getAttribute("data-value"),
      count: Number(o.getAttribute("data-count")),
      selected: o.getAttribute("data-selected") === "true",
    }))));
}

/** Width × height of a JPEG (from its SOF marker), or null. */
function jpegSize(buf) {
  if (buf[0] !== 0xff || buf[1] !== 0xd8) return null;
  let i = 2;
  while (i + 9 < buf.length) {
    if (buf[i] !== 0xff) return null;
    const marker = buf[i + 1];
    const len = buf.readUInt16BE(i + 2);
    if (marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker)) {
      return { height: buf.readUInt16BE(i + 5), width: buf.readUInt16BE(i + 7) };
    }
    i += 2 + len;
  }
  return null;
}

async function main() {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: !env.HEADFUL,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic", "--no-first-run",
      "--disable-component-update", "--disable-sync"],
    viewport: { width: 1280, height: 900 },
    timeout: STEP_MS,
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(STEP_MS);
  page.on("pageerror", (err) => pageErrors.push(String(err?.message ?? err)));
  page.on("console", (msg) => { if (msg.type() === "error") consoleErrors.push(msg.text()); });
  page.on("response", async (res) => {
    const url = res.url();
    if (!["/_image_search", "/_visually_similar", "/_search"].some((e) => url.includes(e))) return;
    const call = { method: res.request().method(), url, status: res.status(), json: null, requestBody: res.request().postData() };
    apiCalls.push(call);
    try { call.json = await res.json(); } catch { /* not JSON */ }
  });

  const demoUrl = `${GATEWAY_URL}/demo/${encodeURIComponent(HASHID)}?rpp=${RPP}`;
  await step(`open ${demoUrl}`, async () => {
    const res = await page.goto(demoUrl, { waitUntil: "domcontentloaded" });
    check(res && res.ok(), `GET /demo/${HASHID} answered HTTP ${res?.status()}`);
    await page.locator(tid("file-input")).waitFor({ state: "attached" });
    // demo.js is a module; wait until it has wired the page (engine label set from the URL).
    await page.waitForFunction(() => document.querySelector('[data-testid="engine"]')?.textContent.trim() !== "", null, { timeout: STEP_MS })
      .catch(() => { throw new CheckFailed("demo.js did not start (is /static/demo.js and /static/imgsearch-client.js served?)"); });
  });

  await step("the catalog shows before any query", async () => {
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="result"]').length > 0, null, { timeout: FIRST_SEARCH_MS })
      .catch(() => { throw new CheckFailed("no catalog on the page before a query"); });
    const browse = apiCalls.find((c) => new URL(c.url).pathname.endsWith("/_search"));
    check(browse && browse.method === "GET" && !new URL(browse.url).searchParams.has("query"), "the first page did not browse with GET _search");
    log(`  ${(await grid()).length} catalog items shown on arrival`);
  });

  let first;
  await step("upload the photo and wait for results", async () => {
    const call = await apiRoundTrip("_image_search", () => page.locator(tid("file-input")).setInputFiles(UPLOAD_IMAGE), FIRST_SEARCH_MS);
    check(call && call.method === "POST", "the upload was not a POST to _image_search");
    const body = JSON.parse(call.requestBody || "{}");
    check(typeof body.image === "string" && body.image.length > 0 && !body.image.startsWith("data:"), "the request body has no base64 `image`");
    const sent = Buffer.from(body.image, "base64");
    const original = fs.readFileSync(UPLOAD_IMAGE);
    const size = jpegSize(sent);
    const origSize = jpegSize(original);
    if (size && origSize && Math.max(origSize.width, origSize.height) > 512) {
      // The client keeps the original when re-encoding would not make it smaller (an already
      // small, well-compressed file); a heavy photo must always arrive downsized.
      const keptSmallOriginal = sent.equals(original) && original.length <= 150_000;
      check(Math.max(size.width, size.height) <= 512 || keptSmallOriginal,
        `the photo was not downsized before upload (${size.width}×${size.height}, ${sent.length} bytes)`);
      log(`  uploaded ${size.width}×${size.height} JPEG, ${sent.length} bytes (original ${origSize.width}×${origSize.height}, ${original.length} bytes)`);
    }
    first = await grid();
    check(first.length > 0, "no results after uploading the photo");
    for (const r of first) check(/score\s+-?\d/.test(r.score), `result ${r.dfid} shows no score`);
    const t = await total();
    check(t >= first.length, `total ${t} is below the ${first.length} results shown`);
    log(`  ${first.length} results on the page, total ${t}, ${(await facetOptions()).length} facet options`);
  });

  await step("tick a facet option: grid, total and counts change consistently", async () => {
    const before = await total();
    const beforeGrid = await grid();
    const options = (await facetOptions()).filter((o) => !o.selected && o.count > 0);
    check(options.length > 0, "no facet options shown (the response had no term facets with items)");
    const pick = options.find((o) => o.count < before && o.count > RPP) ?? options.find((o) => o.count < before) ?? options[0];
    const optionsInField = (await facetOptions()).filter((o) => o.field === pick.field).length;
    log(`  ticking ${pick.field} = "${pick.value}" (count ${pick.count}, total ${before})`);
    const option = page.locator(`${tid(`facet-${pick.field}`)} ${tid("facet-option")}`).filter({ has: page.locator(`input[value="${pick.value.replace(/"/g, '\\"')}"]`) });
    const call = await apiRoundTrip("_image_search", () => option.locator("input").check());
    const q = new URL(call.url).searchParams;
    check(q.getAll(`filter[${pick.field}][]`).includes(pick.value), `the request did not carry filter[${pick.field}][]=${pick.value}: ${call.url}`);
    const after = await total();
    const afterGrid = await grid();
    check(afterGrid.length > 0, "no results after ticking a facet option");
    check(after >= pick.count || after === 0, `total after the filter (${after}) is below the option's count (${pick.count})`);
    check(after <= before, `total grew from ${before} to ${after} after adding a filter`);
    if (after !== pick.count) log(`  note: total ${after} ≠ count ${pick.count} (the filtered pool reaches beyond the unfiltered one)`);
    if (pick.count < before) {
      check(after !== before || JSON.stringify(afterGrid) !== JSON.stringify(beforeGrid), "the grid did not change after ticking a facet option");
    }
    for (const r of call.json?.results ?? []) {
      if (r[pick.field] === undefined) continue;
      const values = [].concat(r[pick.field]).map(String);
      check(values.includes(pick.value), `result ${r.dfid} has ${pick.field}=${values.join(",")}, not "${pick.value}"`);
    }
    const now = await facetOptions();
    const selected = now.find((o) => o.field === pick.field && o.value === pick.value);
    check(selected && selected.selected, `the ticked option ${pick.field}="${pick.value}" is no longer listed as selected`);
    const stillListed = now.filter((o) => o.field === pick.field).length;
    check(stillListed >= Math.min(optionsInField, 2), `facet ${pick.field} collapsed to ${stillListed} option(s) after selecting one (not disjunctive)`);
    log(`  total ${before} → ${after}; ${pick.field} still lists ${stillListed} options`);
  });

  await step("page forward", async () => {
    let info = await pageInfo();
    if (info.pages < 2) {
      log("  one page only with the filter; clearing filters first");
      await apiRoundTrip("_image_search", () => page.locator(tid("clear-filters")).click());
      info = await pageInfo();
    }
    check(info.pages >= 2, `only one page of results (total ${await total()}, rpp ${RPP}); the catalog is too small to test paging`);
    const p1 = await grid();
    const call = await apiRoundTrip("_image_search", () => page.locator(tid("next-page")).click());
    check(new URL(call.url).searchParams.get("page") === String(info.page + 1), `the request asked for page ${new URL(call.url).searchParams.get("page")}`);
    const after = await pageInfo();
    check(after.page === info.page + 1 && after.text !== info.text, `page info did not advance: "${info.text}" → "${after.text}"`);
    check(after.text.includes(`Page ${info.page + 1} of`), `unexpected page info "${after.text}"`);
    const p2 = await grid();
    check(p2.length > 0, "page 2 is empty");
    const overlap = p2.filter((r) => p1.some((o) => o.dfid === r.dfid));
    check(overlap.length === 0, `pages ${info.page} and ${after.page} share results: ${overlap.map((r) => r.dfid).join(", ")}`);
    log(`  "${info.text}" → "${after.text}", ${p2.length} new results`);
  });

  await step("sort by price (when results carry prices)", async () => {
    const shown = await grid();
    if (!shown.some((r) => r.price)) {
      log("  results have no price; skipped");
      return;
    }
    const call = await apiRoundTrip("_image_search", () => page.locator(tid("sort")).selectOption("desc"));
    check([...new URL(call.url).searchParams.keys()].some((k) => /^sort\[0]\[/.test(k)), "the request carried no sort");
    const prices = (call.json?.results ?? []).map((r) => Number(r.price)).filter(Number.isFinite);
    for (let i = 1; i < prices.length; i++) check(prices[i] <= prices[i - 1], `prices are not descending: ${prices.join(", ")}`);
    check((await pageInfo()).page === 1, "sorting did not return to page 1");
  });

  await step("click “similar” on a result", async () => {
    const target = page.locator(tid("result")).first();
    const dfid = await target.getAttribute("data-dfid");
    const call = await apiRoundTrip("_visually_similar", () => target.locator(tid("result-similar")).click());
    check(call.method === "GET", "similar was not a GET");
    check(new URL(call.url).searchParams.get("dfid") === dfid, `similar asked for dfid ${new URL(call.url).searchParams.get("dfid")}, not ${dfid}`);
    const shown = await grid();
    check(shown.length > 0, "no results for “similar”");
    check(!shown.some((r) => r.dfid === dfid), `the item itself (${dfid}) is among its similar items`);
    check(/similar/i.test(await page.locator(tid("query-text")).innerText()), "the page does not say what it is showing");
    for (const r of shown) check(/score\s+-?\d/.test(r.score), `similar result ${r.dfid} shows no score`);
    log(`  ${shown.length} results similar to ${dfid}, total ${await total()}`);
  });

  await step("search in words", async () => {
    await page.locator(tid("text-input")).fill("dress");
    const call = await apiRoundTrip("/_search", () => page.locator(tid("text-input")).press("Enter"));
    check(call.method === "GET" && new URL(call.url).searchParams.get("query") === "dress", "the words were not sent as GET _search?query=dress");
    check((await grid()).length > 0, "no results for the words");
    check(/dress/.test(await page.locator(tid("query-text")).innerText()), "the page does not say what it searched for");
    log(`  "dress": ${(await grid()).length} results, query_name ${call.json?.query_name}`);
  });

  await step("screenshots (desktop and phone)", async () => {
    await page.screenshot({ path: path.join(ARTIFACT_DIR, "demo.png"), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(100);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 1, `the page is ${overflow}px wider than a 390px phone screen`);
    check(!(await page.locator(tid("filters")).evaluate((el) => el.open)), "filters stay unfolded on a phone");
    check(await page.locator(tid("result")).first().isVisible(), "no result visible on a phone screen");
    await page.screenshot({ path: path.join(ARTIFACT_DIR, "demo-mobile.png"), fullPage: false });
  });
}

let code = 0;
try {
  await main();
  log(`PASSED (${apiCalls.length} API calls); screenshots in ${ARTIFACT_DIR}`);
} catch (err) {
  code = 1;
  const what = err instanceof CheckFailed ? err.message : `${err?.name ?? "Error"}: ${err?.message ?? err}`;
  console.error(`demo.spec: FAILED during "${currentStep}": ${what.split("\n")[0]}`);
  if (!(err instanceof CheckFailed) && err?.message?.includes("\n")) console.error(err.message.split("\n").slice(1, 8).join("\n"));
  const last = apiCalls[apiCalls.length - 1];
  if (last) console.error(`  last API call: ${last.method} ${last.url} → HTTP ${last.status} ${last.json?.error ? JSON.stringify(last.json.error) : ""}`);
  if (pageErrors.length) console.error(`  page errors: ${pageErrors.join(" | ")}`);
  if (consoleErrors.length) console.error(`  console errors: ${consoleErrors.slice(0, 5).join(" | ")}`);
  if (page) {
    await page.screenshot({ path: path.join(ARTIFACT_DIR, "demo-failure.png"), fullPage: true, timeout: 5000 })
      .then(() => console.error(`  screenshot: ${path.join(ARTIFACT_DIR, "demo-failure.png")}`)).catch(() => {});
  }
} finally {
  clearTimeout(watchdog);
  await context?.close().catch(() => {});
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
process.exit(code);
