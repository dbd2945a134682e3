import { describe, expect, it } from "vitest";
import { keyMetric } from "./Production";

describe("keyMetric", () => {
  it("names what each gate is judged on", () => {
    expect(keyMetric("eval", { candidate_mean: 0.91234, baseline_mean: 0.9 })).toBe("score 0.912");
    expect(keyMetric("latency", { candidate_p95_ms: 128.4, baseline_p95_ms: 90 })).toBe("p95 128 ms");
    expect(keyMetric("prompt", { leaks: 0 })).toBe("0 leaks");
    expect(keyMetric("security", { blocking: 2 })).toBe("2 blocking");
    expect(keyMetric("schema", { bump: "minor" })).toBe("bump minor");
  });
  it("says nothing when the metric is absent or not a number", () => {
    expect(keyMetric("eval", {})).toBeNull();
    expect(keyMetric("latency", { candidate_p95_ms: "fast" })).toBeNull();
    expect(keyMetric("custom", { x: 1 })).toBeNull();
    expect(keyMetric("eval", undefined)).toBeNull();
  });
});
