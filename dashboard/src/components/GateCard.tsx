// A card per gate verdict with the evidence that decided it: schema changes with their
// JSON paths, leaking attacks with the leaked span highlighted and the detector named, the
// eval delta with its interval and flipped items, CVEs by layer (added vs inherited), and
// p95 against the baseline.
import type { Finding, Verdict } from "../api/client";
import { OutcomeBadge } from "./StateBadge";

type Metrics = Record<string, unknown>;

function num(m: Metrics, k: string): number | undefined {
  const v = m[k];
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

function data(f: Finding): Record<string, unknown> {
  return f.data && typeof f.data === "object" ? (f.data as Record<string, unknown>) : {};
}

const SHOW = 50;

export function GateCard({ name, verdict }: { name: string; verdict: Verdict }) {
  const metrics = verdict.metrics as Metrics;
  const headingId = `gate-${name}`;
  return (
    <article className={`gate-card gate-${verdict.outcome}`} aria-labelledby={headingId} data-gate={name}>
      <header>
        <h3 id={headingId}>{name}</h3>
        <OutcomeBadge outcome={verdict.outcome} />
      </header>
      <p className="summary">{verdict.summary}</p>
      <Evidence name={name} verdict={verdict} metrics={metrics} />
    </article>
  );
}

function Evidence({ name, verdict, metrics }: { name: string; verdict: Verdict; metrics: Metrics }) {
  switch (name) {
    case "schema":
      return <SchemaEvidence findings={verdict.findings} />;
    case "prompt":
      return <PromptEvidence findings={verdict.findings} metrics={metrics} />;
    case "eval":
      return <EvalEvidence findings={verdict.findings} metrics={metrics} />;
    case "security":
      return <SecurityEvidence findings={verdict.findings} metrics={metrics} />;
    case "latency":
      return <LatencyEvidence metrics={metrics} />;
    default:
      return <FindingList findings={verdict.findings} />;
  }
}

function More({ total }: { total: number }) {
  return total > SHOW ? <p className="muted">…and {total - SHOW} more (vaia runs show --json has them all).</p> : null;
}

function FindingList({ findings }: { findings: Finding[] }) {
  if (findings.length === 0) return null;
  return (
    <ul className="findings">
      {findings.slice(0, SHOW).map((f, i) => (
        <li key={i}>
          <span className={`sev sev-${f.severity}`}>{f.severity}</span> {f.message}
          {f.location ? <code className="loc">{f.location}</code> : null}
        </li>
      ))}
    </ul>
  );
}

function SchemaEvidence({ findings }: { findings: Finding[] }) {
  if (findings.length === 0) return <p className="muted">No change against production's tools.</p>;
  return (
    <table className="evidence">
      <caption>Tool-schema changes</caption>
      <thead>
        <tr>
          <th scope="col">JSON path</th>
          <th scope="col">change</th>
          <th scope="col">kind</th>
        </tr>
      </thead>
      <tbody>
        {findings.slice(0, SHOW).map((f, i) => (
          <tr key={i}>
            <td>
              <code>{f.location ?? "–"}</code>
            </td>
            <td>{f.message}</td>
            <td>{f.rule.replace(/^schema\./, "")}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function PromptEvidence({ findings, metrics }: { findings: Finding[]; metrics: Metrics }) {
  const leaks = findings.filter((f) => f.rule.startsWith("prompt.leak"));
  const rate = num(metrics, "attack_success_rate");
  return (
    <>
      <p>
        {num(metrics, "succeeded") ?? "?"} of {num(metrics, "answered") ?? "?"} attacks leaked
        {rate !== undefined ? ` (${(rate * 100).toFixed(1)} %)` : ""}; {num(metrics, "leaks") ?? leaks.length} leaks,{" "}
        {num(metrics, "encoded_leaks") ?? 0} encoded.
      </p>
      {leaks.length > 0 ? (
        <ul className="leaks" aria-label="Leaking attacks">
          {leaks.slice(0, SHOW).map((f, i) => {
            const d = data(f);
            const span = Array.isArray(d.span) ? (d.span as number[]) : null;
            return (
              <li key={i} className="leak">
                <div>
                  <strong>{String(d.attack ?? f.location ?? "attack")}</strong>{" "}
                  <span className="muted">({String(d.category ?? "")})</span> leaked <code>{String(d.secret ?? "?")}</code>{" "}
                  — detector <span className="detector">{String(d.detector ?? "?")}</span>
                  {span ? (
                    <span className="muted">
                      {" "}
                      at characters {span[0]}–{span[1]} of the answer
                    </span>
                  ) : null}
                </div>
                {typeof d.evidence === "string" ? (
                  <blockquote className="answer">
                    <mark>{d.evidence}</mark>
                  </blockquote>
                ) : null}
              </li>
            );
          })}
        </ul>
      ) : null}
      <More total={leaks.length} />
    </>
  );
}

function EvalEvidence({ findings, metrics }: { findings: Finding[]; metrics: Metrics }) {
  const delta = num(metrics, "delta_pp");
  const lo = num(metrics, "ci_low_pp");
  const hi = num(metrics, "ci_high_pp");
  const threshold = num(metrics, "threshold_pp");
  const flips = findings.filter((f) => f.rule.startsWith("eval.flip"));
  const fmt = (v: number | undefined) => (v === undefined ? "?" : `${v >= 0 ? "+" : ""}${v.toFixed(1)} pp`);
  // The interval on a −100…+100 pp axis, with the threshold marked.
  const x = (v: number) => 150 + (Math.max(-100, Math.min(100, v)) * 140) / 100;
  return (
    <>
      <p>
        Candidate against production: <strong>{fmt(delta)}</strong>, {Math.round((num(metrics, "confidence") ?? 0.95) * 100)} %
        interval [{fmt(lo)}, {fmt(hi)}]; fails below {threshold !== undefined ? `−${threshold} pp` : "the threshold"}.
      </p>
      {delta !== undefined && lo !== undefined && hi !== undefined ? (
        <svg viewBox="0 0 300 36" className="interval" role="img" aria-label={`delta ${fmt(delta)}, interval ${fmt(lo)} to ${fmt(hi)}`}>
          <line x1={10} x2={290} y1={18} y2={18} className="axis" />
          <line x1={150} x2={150} y1={6} y2={30} className="zero" />
          {threshold !== undefined ? <line x1={x(-threshold)} x2={x(-threshold)} y1={4} y2={32} className="threshold" /> : null}
          <line x1={x(lo)} x2={x(hi)} y1={18} y2={18} className="ci" />
          <circle cx={x(delta)} cy={18} r={5} className="point" />
        </svg>
      ) : null}
      {flips.length > 0 ? (
        <table className="evidence">
          <caption>Flipped golden items</caption>
          <thead>
            <tr>
              <th scope="col">item</th>
              <th scope="col">category</th>
              <th scope="col">production</th>
              <th scope="col">candidate</th>
            </tr>
          </thead>
          <tbody>
            {flips.slice(0, SHOW).map((f, i) => {
              const d = data(f);
              return (
                <tr key={i} className={f.rule}>
                  <td>{String(d.id ?? f.location ?? "")}</td>
                  <td>{String(d.category ?? "")}</td>
                  <td>{String(d.baseline ?? "")}</td>
                  <td>{String(d.candidate ?? "")}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      ) : null}
      <More total={flips.length} />
    </>
  );
}

function SecurityEvidence({ findings, metrics }: { findings: Finding[]; metrics: Metrics }) {
  const vulns = findings.filter((f) => typeof data(f).id === "string");
  const byLayer = new Map<string, Finding[]>();
  for (const f of vulns) {
    const layer = String(data(f).layer ?? "unknown layer");
    byLayer.set(layer, [...(byLayer.get(layer) ?? []), f]);
  }
  const inheritedRule = (f: Finding) => /inherited/.test(f.rule);
  return (
    <>
      <p>
        {num(metrics, "blocking") ?? 0} blocking in layers the image adds, {num(metrics, "inherited") ?? 0} inherited from the
        base image, {num(metrics, "listed") ?? 0} listed, {num(metrics, "ignored") ?? 0} ignored.
      </p>
      {[...byLayer].map(([layer, fs]) => (
        <table className="evidence" key={layer}>
          <caption>
            Layer <code title={layer}>{layer.slice(0, 19)}</code> —{" "}
            {fs.every(inheritedRule) ? "inherited from the base image" : "added by the image"}
          </caption>
          <thead>
            <tr>
              <th scope="col">CVE</th>
              <th scope="col">package</th>
              <th scope="col">installed</th>
              <th scope="col">fixed in</th>
              <th scope="col">severity</th>
              <th scope="col">origin</th>
            </tr>
          </thead>
          <tbody>
            {fs.slice(0, SHOW).map((f, i) => {
              const d = data(f);
              return (
                <tr key={i}>
                  <td>{String(d.id)}</td>
                  <td>{String(d.package ?? "")}</td>
                  <td>{String(d.installed_version ?? "")}</td>
                  <td>{d.fixed_version ? String(d.fixed_version) : "no fix"}</td>
                  <td>{String(d.severity ?? f.severity)}</td>
                  <td>{inheritedRule(f) ? "inherited" : "added"}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      ))}
    </>
  );
}

function LatencyEvidence({ metrics }: { metrics: Metrics }) {
  const cand = num(metrics, "candidate_p95_ms");
  const base = num(metrics, "baseline_p95_ms");
  const limit = num(metrics, "threshold_ratio");
  if (cand === undefined || base === undefined) return <FindingList findings={[]} />;
  const max = Math.max(cand, base * (limit ?? 1)) * 1.1;
  const w = (v: number) => (v / max) * 260;
  return (
    <>
      <p>
        p95 <strong>{cand.toFixed(1)} ms</strong> against production's {base.toFixed(1)} ms (×{(cand / base).toFixed(2)}; limit ×
        {limit?.toFixed(2) ?? "?"}), {num(metrics, "requests") ?? "?"} requests, {num(metrics, "failures") ?? 0} failed.
      </p>
      <svg viewBox="0 0 300 50" className="bars" role="img" aria-label={`candidate p95 ${cand.toFixed(1)} ms, baseline ${base.toFixed(1)} ms`}>
        <rect x={30} y={4} height={16} width={w(base)} className="baseline" />
        <text x={0} y={16}>prod</text>
        <rect x={30} y={28} height={16} width={w(cand)} className="candidate" />
        <text x={0} y={40}>cand</text>
        {limit ? <line x1={30 + w(base * limit)} x2={30 + w(base * limit)} y1={0} y2={50} className="threshold" /> : null}
      </svg>
    </>
  );
}
