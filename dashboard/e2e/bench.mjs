// The dashboard's benchmark (bench/dashboard.md): the built bundle's gzipped JavaScript,
// first contentful paint of the runs list with 10,000 runs in headless chromium, and the
// time from a run's write to its row on an open page (median), against a real `vaia up`.
// Usage: node e2e/bench.mjs [runs=10000] [updates=40]
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { openBrowser } from "./browser.mjs";
import { DIST, commit, missingTools, push, up } from "./stack.mjs";

const RUNS = Number(process.argv[2] ?? 10_000);
const UPDATES = Number(process.argv[3] ?? 40);
const missing = missingTools();
if (missing.length) {
  console.error(`cannot run the benchmark: ${missing.join("; ")}`);
  process.exit(2);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))];

// 1. Bundle size.
const assets = join(DIST, "assets");
let js = 0;
let jsGz = 0;
for (const f of readdirSync(assets).filter((f) => f.endsWith(".js"))) {
  const b = readFileSync(join(assets, f));
  js += b.length;
  jsGz += gzipSync(b, { level: 9 }).length;
}
console.log(`bundle: ${(js / 1024).toFixed(1)} KB JS, ${(jsGz / 1024).toFixed(1)} KB gzipped`);

const stack = await up();
const browser = await openBrowser();
try {
  // 2. Fill the stack with RUNS runs through the webhook (16 at a time).
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < RUNS) {
        next++;
        await push(stack, `bench/agent-${next % 20}`, commit());
      }
    }),
  );
  console.log(`filled: ${RUNS} runs in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  // 3. First contentful paint and first row of the runs list, then every run listed.
  const fcps = [];
  const firstRows = [];
  const allListed = [];
  for (let i = 0; i < 5; i++) {
    const page = await browser.context.newPage();
    await page.addInitScript(() => {
      new MutationObserver((_, obs) => {
        if (document.querySelector("[data-run-id]")) {
          window.__firstRow = performance.now();
          obs.disconnect();
        }
      }).observe(document, { childList: true, subtree: true });
    });
    await page.goto(stack.url + "/");
    await page.getByText(`${RUNS} runs`, { exact: true }).waitFor({ timeout: 60_000 });
    const m = await page.evaluate(() => ({
      fcp: performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? NaN,
      firstRow: window.__firstRow,
      now: performance.now(),
    }));
    fcps.push(m.fcp);
    firstRows.push(m.firstRow);
    allListed.push(m.now);
    await page.close();
  }
  console.log(
    `runs list with ${RUNS} runs (5 loads, median): first contentful paint ${median(fcps).toFixed(0)} ms, ` +
      `first row ${median(firstRows).toFixed(0)} ms, all ${RUNS} listed ${median(allListed).toFixed(0)} ms ` +
      `(fcp max ${Math.max(...fcps).toFixed(0)} ms)`,
  );

  // 4. Update latency: write (the webhook creating the run) → its row on an open page.
  const page = await browser.context.newPage();
  await page.addInitScript(() => {
    window.__seen = {};
    new MutationObserver(() => {
      for (const el of document.querySelectorAll("[data-run-id]")) {
        const id = el.getAttribute("data-run-id");
        if (!(id in window.__seen)) window.__seen[id] = Date.now();
      }
    }).observe(document, { childList: true, subtree: true });
  });
  await page.goto(stack.url + "/");
  await page.getByText(`${RUNS} runs`, { exact: true }).waitFor({ timeout: 60_000 });
  await page.locator('[data-feed="open"]').waitFor();
  const lat = [];
  for (let i = 0; i < UPDATES; i++) {
    const sent = Date.now();
    const { run_id } = await push(stack, "bench/latency", commit());
    await page.locator(`[data-run-id="${run_id}"]`).waitFor({ timeout: 10_000 });
    const seen = await page.evaluate((id) => window.__seen[id], run_id);
    lat.push(seen - sent);
  }
  console.log(
    `update latency over ${UPDATES} runs: median ${median(lat)} ms, p95 ${pct(lat, 0.95)} ms, max ${Math.max(...lat)} ms`,
  );
} finally {
  await browser.close();
  await stack.stop();
}
