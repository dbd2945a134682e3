// Production, as far as the runs show it: per repository the version in production (the
// newest PROMOTED run), the promoted versions before it, and rollbacks with their cause.
import { useLive } from "../live";
import { onLinkClick } from "../router";
import { shortSha } from "../runs";
import type { RunSummary } from "../api/client";

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
      {[...byRepo].map(([repo, rs]) => {
        const current = rs.find((r) => r.state === "PROMOTED");
        return (
          <article key={repo} className="prod" aria-label={repo}>
            <h2>{repo}</h2>
            <p>
              In production:{" "}
              {current ? (
                <>
                  <strong>{current.version ?? "?"}</strong> ({shortSha(current.commit)})
                </>
              ) : (
                "nothing (rolled back)"
              )}
            </p>
            <ol className="lineage" aria-label={`${repo} promoted versions, newest first`}>
              {rs.map((r) => (
                <li key={r.id}>
                  <a href={`/runs/${encodeURIComponent(r.id)}`} onClick={onLinkClick}>
                    {r.version ?? "?"} · {shortSha(r.commit)}
                  </a>{" "}
                  {r.state === "ROLLBACK" ? <span className="badge state-rollback">rolled back</span> : null}
                  {r.state === "ROLLBACK" && r.failure ? <span className="muted"> {r.failure}</span> : null}
                </li>
              ))}
            </ol>
          </article>
        );
      })}
      <p className="muted">Registry aliases and lineage appear here once the stack's API offers /api/registry.</p>
    </section>
  );
}
