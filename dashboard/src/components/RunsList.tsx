// The runs view: live list, filters by state and repository (kept in the URL), virtualised
// so that 10,000 runs scroll smoothly, each row a link to the run.
import { useMemo, useRef } from "react";
import { useVirtualizer } from "@tanstack/react-virtual";
import type { RunSummary, State } from "../api/client";
import { useLive } from "../live";
import { navigate, onLinkClick } from "../router";
import { ALL_STATES, age, filterRuns, formatDuration, runDuration, shortSha } from "../runs";
import { StateBadge } from "./StateBadge";
import { EmptyStack, ErrorBox } from "./States";

const ROW_HEIGHT = 56;

export function RunsList({ state, repo }: { state: string; repo: string }) {
  const live = useLive();
  const repos = useMemo(() => [...new Set(live.runs.map((r) => r.repository))].sort(), [live.runs]);
  const shown = useMemo(
    () => filterRuns(live.runs, { state: state as State | "", repo }),
    [live.runs, state, repo],
  );

  const setFilter = (key: "state" | "repo", value: string) => {
    const q = new URLSearchParams();
    const next = { state, repo, [key]: value };
    if (next.state) q.set("state", next.state);
    if (next.repo) q.set("repo", next.repo);
    const s = q.toString();
    navigate(s ? `/?${s}` : "/");
  };

  if (live.error && live.runs.length === 0) {
    return <ErrorBox error={live.error} retry={live.retry} what="the runs" />;
  }
  if (live.loading) {
    return (
      <p role="status" className="muted">
        Loading runs…
      </p>
    );
  }
  if (live.runs.length === 0) return <EmptyStack />;

  return (
    <section aria-labelledby="runs-heading" className="runs">
      <div className="toolbar">
        <h1 id="runs-heading">Runs</h1>
        <label>
          State{" "}
          <select value={state} onChange={(e) => setFilter("state", e.target.value)}>
            <option value="">any</option>
            {ALL_STATES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label>
          Repository{" "}
          <select value={repo} onChange={(e) => setFilter("repo", e.target.value)}>
            <option value="">any</option>
            {repos.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </label>
        <span className="muted" role="status" aria-live="polite">
          {shown.length === live.runs.length
            ? `${live.runs.length} runs`
            : `${shown.length} of ${live.runs.length} runs`}
          {live.complete ? "" : " (loading more…)"}
        </span>
      </div>
      {shown.length === 0 ? (
        <p className="muted">No run matches these filters.</p>
      ) : (
        <VirtualRuns runs={shown} />
      )}
    </section>
  );
}

function VirtualRuns({ runs }: { runs: RunSummary[] }) {
  const parent = useRef<HTMLDivElement>(null);
  const v = useVirtualizer({
    count: runs.length,
    getScrollElement: () => parent.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 10,
    getItemKey: (i) => runs[i].id,
    // jsdom and the first paint have no layout yet: assume a viewport.
    initialRect: { width: 1000, height: 800 },
  });
  const now = Date.now();
  return (
    <div ref={parent} className="scroller" tabIndex={-1}>
      <ul
        aria-label="Pipeline runs, newest first"
        aria-rowcount={runs.length}
        style={{ height: v.getTotalSize(), position: "relative" }}
      >
        {v.getVirtualItems().map((item) => {
          const r = runs[item.index];
          return (
            <li
              key={item.key}
              aria-setsize={runs.length}
              aria-posinset={item.index + 1}
              style={{ position: "absolute", top: 0, left: 0, right: 0, height: ROW_HEIGHT, transform: `translateY(${item.start}px)` }}
            >
              <a className="run-row" href={`/runs/${encodeURIComponent(r.id)}`} onClick={onLinkClick} data-run-id={r.id}>
                <StateBadge state={r.state} />
                <span className="repo">{r.repository}</span>
                <code className="sha" title={r.commit}>
                  {shortSha(r.commit)}
                </code>
                <span className="version">{r.version ?? "–"}</span>
                <span className="branch muted">
                  {r.trigger}
                  {r.branch ? ` · ${r.branch}` : ""}
                </span>
                <span className="age muted" title={r.created_at}>
                  {age(r.created_at, now)}
                </span>
                <span className="duration muted">{formatDuration(runDuration(r, now))}</span>
                {r.failure ? <span className="failure">{r.failure}</span> : null}
              </a>
            </li>
          );
        })}
      </ul>
    </div>
  );
}
