// The README's screenshots: the runs list and a failed run's detail, from a running stack
// that `vaia demo` filled. Usage: node e2e/screenshots.mjs http://127.0.0.1:8080 [gate=prompt]
import { openBrowser } from "./browser.mjs";
import { ROOT } from "./stack.mjs";
import { join } from "node:path";

const url = process.argv[2] ?? "http://127.0.0.1:8080";
const gate = process.argv[3] ?? "prompt";
const { runs } = await (await fetch(`${url}/api/runs?limit=100`)).json();
const failed = runs.find((r) => r.state === "FAILED" && r.gates[gate] === "fail");
if (!failed) throw new Error(`no run failed by ${gate} at ${url}`);
const browser = await openBrowser();
try {
  const page = await browser.context.newPage();
  await page.setViewportSize({ width: 1280, height: 640 });
  await page.goto(url + "/");
  await page.locator('[data-feed="open"]').waitFor();
  await page.screenshot({ path: join(ROOT, "docs/dashboard-runs.png") });
  await page.setViewportSize({ width: 1280, height: 1400 });
  await page.goto(`${url}/runs/${failed.id}`);
  await page.getByRole("article", { name: gate }).waitFor();
  await page.screenshot({ path: join(ROOT, "docs/dashboard-failed-run.png") });
} finally {
  await browser.close();
}
