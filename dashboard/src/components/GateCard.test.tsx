// Each gate's card shows the evidence of a real failing verdict (fixtures recorded from
// `vaia demo`).
import { afterEach, describe, expect, it } from "vitest";
import { cleanup, render, screen, within } from "@testing-library/react";
import type { RunDetail } from "../api/client";
import { GateCard } from "./GateCard";
import schema from "../fixtures/run-schema.json";
import prompt from "../fixtures/run-prompt.json";
import evalRun from "../fixtures/run-eval.json";
import security from "../fixtures/run-security.json";
import latency from "../fixtures/run-latency.json";

afterEach(cleanup);

function card(fixture: unknown, gate: string) {
  const d = fixture as RunDetail;
  render(<GateCard name={gate} verdict={d.verdicts[gate]} />);
  return screen.getByRole("article", { name: gate });
}

describe("GateCard", () => {
  it("schema: each breaking change with its JSON path", () => {
    const c = card(schema, "schema");
    expect(within(c).getByText("fail")).toBeTruthy();
    const table = within(c).getByRole("table", { name: "Tool-schema changes" });
    expect(within(table).getByText("$.tools[1]")).toBeTruthy();
    expect(within(table).getByText("$.tools[0].function.parameters.properties.language")).toBeTruthy();
    expect(within(table).getByText(/tool get_order_status was removed/)).toBeTruthy();
  });

  it("prompt: leaking attacks, the leaked span highlighted, the detector named", () => {
    const c = card(prompt, "prompt");
    const leaks = within(c).getByRole("list", { name: "Leaking attacks" });
    const items = within(leaks).getAllByRole("listitem");
    expect(items.length).toBeGreaterThan(1);
    const exact = items.find((li) => li.textContent?.includes("detector exact"));
    expect(exact).toBeTruthy();
    expect(exact?.querySelector("mark")?.textContent).toMatch(/^VAIA-CANARY-[0-9a-f]+$/);
    expect(exact?.textContent).toContain("at characters 100–128");
    expect(within(c).getByText(/199 of 307 attacks leaked/)).toBeTruthy();
  });

  it("eval: the delta with its interval and the flipped items", () => {
    const c = card(evalRun, "eval");
    expect(c.textContent).toContain("−32.9 pp".replace("−", "-"));
    expect(c.textContent).toMatch(/interval \[-52\.9 pp, -16\.2 pp\]/);
    expect(within(c).getByRole("img", { name: /interval -52.9 pp to -16.2 pp/ })).toBeTruthy();
    const flips = within(c).getByRole("table", { name: "Flipped golden items" });
    expect(within(flips).getByText("g01")).toBeTruthy();
    expect(within(flips).getAllByRole("row")).toHaveLength(1 + 8);
  });

  it("security: CVEs by layer, added by the image", () => {
    const c = card(security, "security");
    const t = within(c).getByRole("table", { name: /Layer sha256:f1b5933fe4b5.*added by the image/ });
    expect(within(t).getAllByText("CVE-2019-14697")).toHaveLength(2);
    expect(within(t).getAllByText("added")).toHaveLength(2);
    expect(c.textContent).toContain("2 blocking in layers the image adds, 0 inherited");
  });

  it("latency: p95 against the baseline", () => {
    const c = card(latency, "latency");
    expect(c.textContent).toContain("p95 128.0 ms against production's 86.3 ms (×1.48; limit ×1.15)");
    expect(within(c).getByRole("img", { name: "candidate p95 128.0 ms, baseline 86.3 ms" })).toBeTruthy();
  });
});
