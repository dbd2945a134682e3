// Continuous training of one repository, as far as the API offers it: the CT budget's
// latest evaluation (the budget against its threshold, its drift and data terms, the
// snapshots compared, the training job it queued) and the recent evaluations, the budget
// over time. Evaluations run on a schedule, not on run changes, so this refetches itself.
import { useQuery } from "@tanstack/react-query";
import { ApiError, listCtEvaluations, type CtEvaluation } from "../api/client";

const REFRESH_MS = 60_000;

const num = (v: number | null | undefined, digits = 3) => (typeof v === "number" ? v.toFixed(digits) : "unknown");

export function ContinuousTraining({ repo }: { repo: string }) {
  const q = useQuery({
    queryKey: ["ct", repo],
    queryFn: () => listCtEvaluations(repo),
    refetchInterval: REFRESH_MS,
  });
  const heading = `${repo} continuous training`;
  if (q.isPending) return <p role="status">Loading continuous training…</p>;
  if (q.error) {
    const missing = q.error instanceof ApiError && q.error.status === 404;
    return (
      <section aria-label={heading} className="ct">
        <h3>Continuous training</h3>
        {missing ? (
          <p className="muted">No CT evaluation yet: the CT budget evaluates every repository with a prod version on its schedule ([ct] schedule_minutes) and after each new dataset snapshot.</p>
        ) : (
          <p role="alert" className="error">
            CT: {q.error.message}
          </p>
        )}
      </section>
    );
  }
  const { latest, evaluations, total } = q.data;
  return (
    <section aria-label={heading} className="ct">
      <h3>Continuous training</h3>
      {latest ? <Latest e={latest} /> : <p className="muted">No CT evaluation yet.</p>}
      <p className="muted">Pending data volume: not measured here (the data watcher is not part of this stack yet).</p>
      {evaluations.length > 0 ? <BudgetChart evaluations={evaluations} /> : null}
      {evaluations.length > 0 ? (
        <table className="lineage" aria-label={`${repo} CT evaluations, newest first`}>
          <thead>
            <tr>
              <th scope="col">at</th>
              <th scope="col">outcome</th>
              <th scope="col">budget</th>
              <th scope="col">drift</th>
              <th scope="col">Δ rows</th>
              <th scope="col">job</th>
            </tr>
          </thead>
          <tbody>
            {evaluations.map((e) => (
              <tr key={e.at}>
                <td>{new Date(e.at).toLocaleString()}</td>
                <td>
                  <span className={`badge ct-${e.outcome}`}>{e.outcome}</span>
                </td>
                <td>
                  {num(e.budget)} / {num(e.threshold, 2)}
                </td>
                <td>{num(e.drift)}</td>
                <td>{e.delta_rows ?? "unknown"}</td>
                <td>{e.job_status ?? "–"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      <p className="muted">
        {evaluations.length} of {total} evaluations shown.
      </p>
    </section>
  );
}

function Latest({ e }: { e: CtEvaluation }) {
  return (
    <div data-testid="ct-latest">
      <p>
        Latest ({new Date(e.at).toLocaleString()}, prod {e.prod_version}):{" "}
        <span className={`badge ct-${e.outcome}`}>{e.outcome}</span> budget <strong>{num(e.budget)}</strong> against a
        threshold of {num(e.threshold, 2)} = drift term {num(e.drift_term)} (drift {num(e.drift)}
        {e.drift_origin ? ` from ${e.drift_origin}` : ""}) + data term {num(e.data_term)} (Δ rows {e.delta_rows ?? "unknown"}).
      </p>
      <p>
        Snapshots: {e.baseline_snapshot ? `${e.baseline_snapshot.path} (${e.baseline_snapshot.rows ?? "rows unknown"})` : "no baseline"} →{" "}
        {e.newest_snapshot ? `${e.newest_snapshot.path} (${e.newest_snapshot.rows ?? "rows unknown"})` : "no new snapshot"}
        {e.job ? (
          <>
            {" "}
            · training job <code>{e.job}</code> {e.job_status ?? ""}
          </>
        ) : null}
      </p>
      {e.reasons.length > 0 ? (
        <ul aria-label="CT reasons">
          {e.reasons.map((r) => (
            <li key={r}>{r}</li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}

/** The budget over time (oldest left), with the threshold as a line; unknown budgets are gaps. */
export function BudgetChart({ evaluations }: { evaluations: CtEvaluation[] }) {
  const points = [...evaluations].reverse();
  const w = 320;
  const h = 80;
  const threshold = points[0]?.threshold ?? 0;
  const max = Math.max(1, threshold, ...points.map((p) => p.budget ?? 0));
  const x = (i: number) => (points.length === 1 ? w / 2 : (i * w) / (points.length - 1));
  const y = (v: number) => h - (v / max) * h;
  const known = points.map((p, i) => ({ i, b: p.budget })).filter((p): p is { i: number; b: number } => p.b !== null);
  const label = `Budget over the last ${points.length} evaluations: ${known.map((p) => p.b.toFixed(2)).join(", ") || "none known"}; threshold ${threshold.toFixed(2)}`;
  return (
    <svg viewBox={`-4 -4 ${w + 8} ${h + 8}`} width={w} height={h} role="img" aria-label={label} className="ct-chart">
      <line x1={0} x2={w} y1={y(threshold)} y2={y(threshold)} className="ct-threshold" strokeDasharray="4 3" stroke="currentColor" />
      {known.map((p) => (
        <circle key={p.i} cx={x(p.i)} cy={y(p.b)} r={3} className={p.b >= threshold ? "ct-over" : "ct-under"} fill="currentColor" />
      ))}
      <polyline points={known.map((p) => `${x(p.i)},${y(p.b)}`).join(" ")} fill="none" stroke="currentColor" />
    </svg>
  );
}
