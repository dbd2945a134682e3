// Pure helpers over run summaries: merging live changes into the listed runs, filtering,
// the state machine's shape, and formatting.
import type { RunEvent, RunSummary, State } from "./api/client";

/** The happy path, in order, then the escape hatches (DESIGN.md, the run state machine). */
export const HAPPY_PATH: State[] = [
  "IDLE",
  "TRIGGERED",
  "CI_RUNNING",
  "BUILD",
  "STAGING_EVAL",
  "CT_QUEUED",
  "PROMOTED",
];
export const ALL_STATES: State[] = [...HAPPY_PATH, "FAILED", "ROLLBACK"];
export const SETTLED: State[] = ["PROMOTED", "FAILED", "ROLLBACK"];

/** Newest first: by creation time, then id (the API's order). */
export function compareRuns(a: RunSummary, b: RunSummary): number {
  if (a.created_at !== b.created_at) return a.created_at < b.created_at ? 1 : -1;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

/** The listed runs with the live changes laid over them; for each run the newer copy wins. */
export function mergeRuns(listed: RunSummary[], live: Map<string, RunSummary>): RunSummary[] {
  if (live.size === 0) return listed;
  const byId = new Map<string, RunSummary>();
  for (const r of listed) byId.set(r.id, r);
  for (const [id, r] of live) {
    const old = byId.get(id);
    if (!old || Date.parse(r.updated_at) >= Date.parse(old.updated_at)) byId.set(id, r);
  }
  return [...byId.values()].sort(compareRuns);
}

export interface Filter {
  state: State | "";
  repo: string;
}

export function filterRuns(runs: RunSummary[], f: Filter): RunSummary[] {
  if (!f.state && !f.repo) return runs;
  return runs.filter((r) => (!f.state || r.state === f.state) && (!f.repo || r.repository === f.repo));
}

export function shortSha(sha: string): string {
  return sha.slice(0, 7);
}

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "–";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d`;
}

export function age(iso: string, now = Date.now()): string {
  return `${formatDuration(now - Date.parse(iso))} ago`;
}

/** A settled run's duration, or an in-flight run's so far. */
export function runDuration(r: RunSummary, now = Date.now()): number {
  const end = SETTLED.includes(r.state) ? Date.parse(r.updated_at) : now;
  return end - Date.parse(r.created_at);
}

/** The states a run went through, in order, from its transition events. */
export function pathTaken(events: RunEvent[]): State[] {
  const path: State[] = [];
  for (const e of events) {
    if (e.kind !== "transition" || !e.to) continue;
    if (path.length === 0) path.push(e.from);
    path.push(e.to);
  }
  return path;
}

export interface TimelineEntry {
  event: RunEvent;
  /** Time until the next event of the log, if any. */
  durationMs: number | null;
}

export function timeline(events: RunEvent[]): TimelineEntry[] {
  return events.map((event, i) => {
    const next = events[i + 1];
    return { event, durationMs: next ? Date.parse(next.at) - Date.parse(event.at) : null };
  });
}
