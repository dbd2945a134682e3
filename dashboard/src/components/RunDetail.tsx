// One run: the state machine with the path taken, operator actions, a card per gate with
// its evidence, and the timeline of its event log.
import { useState } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { act, ApiError, getRun, type Action, type RunDetail as Detail } from "../api/client";
import { onLinkClick } from "../router";
import { formatDuration, pathTaken, shortSha, timeline } from "../runs";
import { GateCard } from "./GateCard";
import { StateGraph } from "./StateGraph";
import { StateBadge } from "./StateBadge";
import { ErrorBox } from "./States";

export function RunDetail({ id }: { id: string }) {
  const q = useQuery({ queryKey: ["run", id], queryFn: () => getRun(id) });
  if (q.isPending) {
    return (
      <p role="status" className="muted">
        Loading run {id}…
      </p>
    );
  }
  if (q.isError) return <ErrorBox error={q.error} retry={() => void q.refetch()} what={`run ${id}`} />;
  return <RunView detail={q.data} />;
}

export function RunView({ detail }: { detail: Detail }) {
  const { run, events, verdicts } = detail;
  const path = pathTaken(events);
  const gates = Object.entries(verdicts);
  // Failed gates first: they are why the page was opened.
  gates.sort(([, a], [, b]) => Number(a.outcome === "pass") - Number(b.outcome === "pass"));
  return (
    <article className="run-detail" aria-labelledby="run-heading">
      <p>
        <a href="/" onClick={onLinkClick}>
          ← All runs
        </a>
      </p>
      <header className="run-header">
        <h1 id="run-heading">
          {run.repository} <code>{shortSha(run.commit)}</code>
        </h1>
        <StateBadge state={run.state} />
        <dl className="facts">
          <dt>Run</dt>
          <dd>
            <code>{run.id}</code>
          </dd>
          <dt>Version</dt>
          <dd>{run.candidate.version ?? "not yet"}</dd>
          <dt>Branch</dt>
          <dd>{run.branch ?? "–"}</dd>
          <dt>Trigger</dt>
          <dd>{String((run.trigger as Record<string, unknown>).kind ?? "?")}</dd>
          <dt>Duration</dt>
          <dd>{formatDuration(Date.parse(run.updated_at) - Date.parse(run.created_at))}</dd>
        </dl>
        {run.failure ? (
          <p className="failure" role="note">
            {run.failure.reason}
          </p>
        ) : null}
      </header>
      <Actions detail={detail} />
      <StateGraph path={path} current={run.state} />
      <section aria-labelledby="gates-heading">
        <h2 id="gates-heading">Gates</h2>
        {gates.length === 0 ? <p className="muted">No verdict yet: the gates run once the evidence is complete.</p> : null}
        <div className="gates">
          {gates.map(([name, v]) => (
            <GateCard key={name} name={name} verdict={v} />
          ))}
        </div>
      </section>
      <section aria-labelledby="timeline-heading">
        <h2 id="timeline-heading">Timeline</h2>
        <ol className="timeline">
          {timeline(events).map(({ event: e, durationMs }) => (
            <li key={e.seq} className={`event kind-${e.kind}`}>
              <time dateTime={e.at}>{new Date(e.at).toLocaleTimeString()}</time>{" "}
              {e.kind === "transition" ? (
                <strong>
                  {e.from} → {e.to}
                </strong>
              ) : (
                <span className="muted">{e.kind === "refused" ? `refused in ${e.from}` : `note in ${e.from}`}</span>
              )}{" "}
              <span className="reason">{e.reason}</span> <span className="muted">by {e.actor}</span>
              {durationMs !== null ? <span className="muted"> · {formatDuration(durationMs)} until next</span> : null}
            </li>
          ))}
        </ol>
      </section>
    </article>
  );
}

function Actions({ detail }: { detail: Detail }) {
  const { run } = detail;
  const qc = useQueryClient();
  const [reason, setReason] = useState("");
  // The gate whose error or inconclusive verdict failed the run may run again (a judge or
  // a Prometheus that was down); a failing verdict is a finding, not retried.
  const failedGate = run.state === "FAILED" ? run.failure?.gate : undefined;
  const outcome = failedGate ? detail.verdicts[failedGate]?.outcome : undefined;
  const retryGate = outcome === "error" || outcome === "inconclusive" ? failedGate : undefined;
  const m = useMutation({
    mutationFn: (a: Action) =>
      act(run.id, a, a === "approve" ? undefined : reason || undefined, a === "retry" ? retryGate : undefined),
    onSuccess: () => void qc.invalidateQueries({ queryKey: ["run", run.id] }),
  });
  const canApprove = run.state === "CT_QUEUED";
  const canRollback = run.state === "PROMOTED";
  if (!canApprove && !canRollback && !retryGate) return null;
  const err = m.error instanceof ApiError ? m.error : null;
  return (
    <section aria-labelledby="actions-heading" className="actions">
      <h2 id="actions-heading">Operator actions</h2>
      {canApprove ? (
        <button type="button" onClick={() => m.mutate("approve")} disabled={m.isPending}>
          Approve promotion
        </button>
      ) : null}
      {canRollback ? (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            m.mutate("rollback");
          }}
        >
          <label>
            Reason <input value={reason} onChange={(e) => setReason(e.target.value)} placeholder="why roll back" />
          </label>{" "}
          <button type="submit" disabled={m.isPending}>
            Roll back
          </button>
        </form>
      ) : null}
      {retryGate ? (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            m.mutate("retry");
          }}
        >
          <label>
            Reason <input value={reason} onChange={(e) => setReason(e.target.value)} placeholder="what was fixed" />
          </label>{" "}
          <button type="submit" disabled={m.isPending}>
            Retry gate {retryGate}
          </button>
        </form>
      ) : null}
      <div role="status" aria-live="polite">
        {m.isSuccess ? <p className="ok">Requested: the orchestrator applies it and logs who asked.</p> : null}
        {m.isError ? (
          <p className="error">
            Refused{err ? ` (HTTP ${err.status})` : ""}: {m.error.message}
            {err?.status === 401 || err?.status === 403 ? " — enter a token with the operate role under “API token”." : ""}
          </p>
        ) : null}
      </div>
    </section>
  );
}
