import { describe, expect, it } from "vitest";
import type { RunSummary } from "./api/client";
import detail from "./fixtures/run-schema.json";
import { filterRuns, mergeRuns, pathTaken, timeline } from "./runs";
import type { RunDetail } from "./api/client";

const run = (id: string, created: string, updated: string, state: RunSummary["state"] = "TRIGGERED"): RunSummary => ({
  id,
  repository: id.startsWith("a") ? "o/a" : "o/b",
  commit: "0".repeat(40),
  trigger: "push",
  state,
  gates: {},
  created_at: created,
  updated_at: updated,
});

describe("mergeRuns", () => {
  it("lays newer live copies over the list and adds new runs in order", () => {
    const listed = [run("a1", "2026-01-01T00:00:02Z", "2026-01-01T00:00:05Z"), run("b1", "2026-01-01T00:00:01Z", "2026-01-01T00:00:01Z")];
    const live = new Map([
      ["a1", run("a1", "2026-01-01T00:00:02Z", "2026-01-01T00:00:04Z", "FAILED")], // older: ignored
      ["b1", run("b1", "2026-01-01T00:00:01Z", "2026-01-01T00:00:09Z", "PROMOTED")],
      ["a2", run("a2", "2026-01-01T00:00:03Z", "2026-01-01T00:00:03Z")],
    ]);
    const merged = mergeRuns(listed, live);
    expect(merged.map((r) => [r.id, r.state])).toEqual([
      ["a2", "TRIGGERED"],
      ["a1", "TRIGGERED"],
      ["b1", "PROMOTED"],
    ]);
    expect(filterRuns(merged, { state: "", repo: "o/a" }).map((r) => r.id)).toEqual(["a2", "a1"]);
    expect(filterRuns(merged, { state: "PROMOTED", repo: "" }).map((r) => r.id)).toEqual(["b1"]);
  });
});

describe("the event log", () => {
  it("gives the path taken and each event's duration", () => {
    const d = detail as unknown as RunDetail;
    expect(pathTaken(d.events)).toEqual(["IDLE", "TRIGGERED", "CI_RUNNING", "FAILED"]);
    const t = timeline(d.events);
    expect(t.at(-1)?.durationMs).toBeNull();
    expect(t[0].durationMs).toBe(Date.parse(d.events[1].at) - Date.parse(d.events[0].at));
  });
});
