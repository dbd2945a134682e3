import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, render, screen } from "@testing-library/react";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { ContinuousTraining } from "./ContinuousTraining";
import type { CtEvaluation } from "../api/client";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

function mount(answer: (url: string) => Response) {
  const urls: string[] = [];
  vi.stubGlobal(
    "fetch",
    vi.fn(async (url: string) => {
      urls.push(url);
      return answer(url);
    }),
  );
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  render(
    <QueryClientProvider client={qc}>
      <ContinuousTraining repo="octo/agent" />
    </QueryClientProvider>,
  );
  return urls;
}

const json = (v: unknown, status = 200) =>
  new Response(JSON.stringify(v), { status, headers: { "content-type": "application/json" } });

const evaluation = (at: string, budget: number | null, outcome: CtEvaluation["outcome"]): CtEvaluation => ({
  repository: "octo/agent",
  at,
  prod_version: "0.2.0",
  baseline_snapshot: { path: "data/train.dvc", md5: "a".repeat(32), rows: 10000 },
  newest_snapshot: { path: "data/train.dvc", md5: "b".repeat(32), rows: 18000 },
  drift_origin: "drift/octo/agent/report.json",
  outcome,
  budget,
  threshold: 0.5,
  drift: budget === null ? null : 0.3,
  drift_term: budget === null ? null : 0.18,
  delta_rows: 8000,
  data_term: 0.32,
  reasons: outcome === "error" ? ["drift report is stale"] : [],
  ...(outcome === "retrain" ? { job: "0f1e2d3c", job_status: "queued" } : {}),
});

describe("ContinuousTraining", () => {
  it("shows the latest budget with its parts, the queued job and the budget over time", async () => {
    const latest = evaluation("2026-12-03T08:00:00Z", 0.62, "retrain");
    const older = evaluation("2026-12-03T07:45:00Z", null, "error");
    const urls = mount(() => json({ repository: "octo/agent", latest, evaluations: [latest, older], total: 7 }));
    const box = await screen.findByTestId("ct-latest");
    expect(box.textContent).toContain("budget 0.620");
    expect(box.textContent).toContain("threshold of 0.50");
    expect(box.textContent).toContain("drift term 0.180");
    expect(box.textContent).toContain("data term 0.320 (Δ rows 8000)");
    expect(box.textContent).toContain("training job 0f1e2d3c queued");
    expect(urls[0]).toMatch(/\/api\/ct\/octo\/agent\?limit=\d+$/);
    const rows = screen.getByRole("table", { name: /CT evaluations/ }).querySelectorAll("tbody tr");
    expect(rows).toHaveLength(2);
    expect(rows[1].textContent).toContain("unknown / 0.50");
    const chart = screen.getByRole("img", { name: /Budget over the last 2 evaluations/ });
    expect(chart.getAttribute("aria-label")).toContain("0.62; threshold 0.50");
    expect(chart.querySelectorAll("circle")).toHaveLength(1);
    expect(screen.getByText("2 of 7 evaluations shown.")).toBeTruthy();
  });

  it("a repository never evaluated says when it will be", async () => {
    mount(() => json({ error: "no CT evaluation of octo/agent" }, 404));
    expect(await screen.findByText(/No CT evaluation yet: the CT budget evaluates/)).toBeTruthy();
  });

  it("other errors are shown as alerts", async () => {
    mount(() => json({ error: "GET /api/ct/octo/agent needs a token with role read" }, 401));
    expect((await screen.findByRole("alert")).textContent).toContain("needs a token with role read");
  });
});
