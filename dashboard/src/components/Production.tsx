// Production: per repository the version `prod` points at and where it pointed before
// (the registry's alias history), every version the registry assigned with its lineage
// (commit, parent, dataset, each gate's outcome and key metric), and rollbacks with
// their cause from the runs. Repositories are those with a promoted or rolled-back run.
import { useQuery } from "@tanstack/react-query";
import { useLive } from "../live";
import { onLinkClick } from "../router";
import { shortSha } from "../runs";
import { ContinuousTraining } from "./ContinuousTraining";
import { listAliases, listVersions, type RunSummary, type VersionRecord } from "../api/client";

export function Production() {
  const { runs, loading } = useLive();
  if (loading) return <p role="status">Loading…</p>;
  const byRepo = new Map<string, RunSummary[]>();
  for (const r of runs) {
    if (r.state !== "PROMOTED" && r.state !== "ROLLBACK") continue;
    byRepo.set(r.repository, [...(byRepo.get(r.repository) ?? []), r]);
  }
  return (
    <section aria-labelledby="prod-heading">
      <h1 id="prod-heading">Production</h1>
      {byRepo.size === 0 ? <p className="muted">Nothing promoted yet.</p> : null}
      {[...byRepo].map(([repo, rs]) => (
        <Repository key={repo} repo={repo} runs={rs} />
      ))}
    </section>
  );
}

/** The key metric of a gate for a one-line summary: what each gate is judged on. */
export function keyMetric(gate: string, metrics: Record<string, unknown> | undefined): string | null {
  if (!metrics) return null;
  const num = (k: string) => (typeof metrics[k] === "number" ? (metrics[k] as number) : null);
  const pick: Record<string, [string, (v: number) => string]> = {
    eval: ["candidate_mean", (v) => `score ${v.toFixed(3)}`],
    latency: ["candidate_p95_ms", (v) => `p95 ${Math.round(v)} ms`],
    prompt: ["leaks", (v) => `${v} leaks`],
    security: ["blocking", (v) => `${v} blocking`],
  };
  if (gate === "schema" && typeof metrics.bump === "string") return `bump ${metrics.bump}`;
  const p = pick[gate];
  if (!p) return null;
  const v = num(p[0]);
  return v === null ? null : p[1](v);
}

function Repository({ repo, runs }: { repo: string; runs: RunSummary[] }) {
  // The registry is read when the runs of this repository change (a promotion or a
  // rollback moves `prod`), not on a timer.
  const stamp = runs.map((r) => `${r.id}:${r.state}`).join(",");
  const aliases = useQuery({ queryKey: ["aliases", repo, stamp], queryFn: () => listAliases(repo) });
  const versions = useQuery({ queryKey: ["versions", repo, stamp], queryFn: () => listVersions(repo) });
  const prod = aliases.data?.aliases.find((a) => a.alias === "prod");
  const rolledBack = runs.filter((r) => r.state === "ROLLBACK");
  const error = aliases.error ?? versions.error;
  return (
    <article className="prod" aria-label={repo}>
      <h2>{repo}</h2>
      {error ? (
        <p role="alert" className="error">
          Registry: {error.message}
        </p>
      ) : null}
      <p>
        In production:{" "}
        {prod ? (
          <>
            <strong data-testid="prod-version">{prod.target.version}</strong> ({shortSha(prod.target.commit)}),{" "}
            <a href={`/runs/${encodeURIComponent(prod.target.run_id)}`} onClick={onLinkClick}>
              run
            </a>
            {prod.history && prod.history.length > 0 ? (
              <span className="muted"> · before: {prod.history.map((h) => h.version).join(" ← ")}</span>
            ) : null}
          </>
        ) : aliases.isPending ? (
          "…"
        ) : (
          "nothing (rolled back)"
        )}
      </p>
      {versions.data ? <Versions repo={repo} versions={versions.data.versions} prod={prod?.target.version} /> : null}
      <ContinuousTraining repo={repo} />
      {rolledBack.length > 0 ? (
        <ul className="rollbacks" aria-label={`${repo} rollbacks`}>
          {rolledBack.map((r) => (
            <li key={r.id}>
              <a href={`/runs/${encodeURIComponent(r.id)}`} onClick={onLinkClick}>
                {r.version ?? "?"} · {shortSha(r.commit)}
              </a>{" "}
              <span className="badge state-rollback">rolled back</span>
              {r.failure ? <span className="muted"> {r.failure}</span> : null}
            </li>
          ))}
        </ul>
      ) : null}
    </article>
  );
}

function Versions({ repo, versions, prod }: { repo: string; versions: VersionRecord[]; prod?: string }) {
  return (
    <table className="lineage" aria-label={`${repo} versions, newest first`}>
      <thead>
        <tr>
          <th scope="col">version</th>
          <th scope="col">parent</th>
          <th scope="col">commit</th>
          <th scope="col">dataset</th>
          <th scope="col">gates</th>
        </tr>
      </thead>
      <tbody>
        {versions.map((v) => (
          <tr key={v.version} aria-current={v.version === prod ? "true" : undefined}>
            <th scope="row">
              <a href={`/runs/${encodeURIComponent(v.run_id)}`} onClick={onLinkClick}>
                {v.version}
              </a>
              {v.version === prod ? <span className="badge state-promoted">prod</span> : null}
            </th>
            <td>{v.previous ?? "–"}</td>
            <td>
              <code>{shortSha(v.commit)}</code>
            </td>
            <td>
              {v.dataset
                ? `${v.dataset.path} (${v.dataset.rows !== undefined ? `${v.dataset.rows} rows` : "rows unknown"})`
                : "–"}
            </td>
            <td>
              {Object.entries(v.gates ?? {}).map(([g, l]) => {
                const metric = keyMetric(g, l.metrics as Record<string, unknown> | undefined);
                return (
                  <span key={g} className={`badge outcome-${l.outcome}`} title={JSON.stringify(l.metrics ?? {})}>
                    {g} {l.outcome}
                    {metric ? ` · ${metric}` : ""}
                  </span>
                );
              })}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
