//! `vaia dataset inspect`, `vaia ct budget`, `vaia ct evaluate` and `vaia data pending`: DVC files, the training
//! budget and the pending data volume from
//! the command line, with JSON on stdout and the gates' exit codes (0 pass / hold, 1 fail
//! / retrain due, 2 bad input or usage, 3 inconclusive or error).

use crate::gate_cmd::{load_policy, BadInput};
use serde_json::json;
use std::path::Path;
use vaia_core::ct::{self, BudgetInput};
use vaia_dvc::{DvcDocument, Out};

/// A file `vaia dataset inspect` cannot read.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}: not UTF-8 text")]
    NotText(String),
    #[error(transparent)]
    Dvc(#[from] vaia_dvc::DvcError),
}

fn out_json(o: &Out) -> serde_json::Value {
    let mut v = json!({
        "path": o.path,
        "md5": o.md5,
        "hash": o.hash,
        "size": o.size,
        "nfiles": o.nfiles,
        "is_dir": o.is_dir,
    });
    if let Some(map) = v.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    v
}

/// The JSON description of a `.dvc` file or a `dvc.lock`.
pub fn inspect(file: &Path) -> Result<serde_json::Value, InspectError> {
    let origin = file.display().to_string();
    let bytes = std::fs::read(file).map_err(|source| InspectError::Read {
        path: origin.clone(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| InspectError::NotText(origin.clone()))?;
    Ok(match vaia_dvc::parse_document(&text, &origin)? {
        DvcDocument::Dvc(f) => {
            let mut v = match f.outs.as_slice() {
                [only] => out_json(only),
                many => json!({ "outs": many.iter().map(out_json).collect::<Vec<_>>() }),
            };
            if let Some(map) = v.as_object_mut() {
                map.insert("file".into(), json!(origin));
                map.insert("format".into(), json!("dvc"));
                if let Some(rows) = f.rows {
                    map.insert("rows".into(), json!(rows));
                }
                if let Some(wdir) = &f.wdir {
                    map.insert("wdir".into(), json!(wdir));
                }
            }
            v
        }
        DvcDocument::Lock(l) => json!({
            "file": origin,
            "format": "dvc.lock",
            "schema": l.schema,
            "stages": l.stages.iter().map(|s| json!({
                "name": s.name,
                "cmd": s.cmd,
                "deps": s.deps.iter().map(out_json).collect::<Vec<_>>(),
                "outs": s.outs.iter().map(out_json).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }),
    })
}

/// `vaia ct budget`: the pure computation; returns the JSON and the exit code.
pub fn budget(
    drift: f64,
    drift_age_secs: Option<f64>,
    delta_rows: Option<i64>,
    policy: Option<&Path>,
) -> Result<(String, i32), BadInput> {
    let policy = load_policy(policy)?;
    if let Some(age) = drift_age_secs {
        if !(age.is_finite() && age >= 0.0) {
            return Err(BadInput::Usage(format!(
                "--drift-age-secs: {age} must be a number of seconds ≥ 0"
            )));
        }
    }
    let b = ct::budget(
        &policy.ct,
        BudgetInput {
            drift: Some(drift),
            drift_age_secs,
            delta_rows,
        },
    );
    let code = b.outcome.exit_code();
    let text = serde_json::to_string_pretty(&b)
        .map_err(|e| BadInput::Usage(format!("cannot print the budget: {e}")))?;
    Ok((text, code))
}

/// `vaia ct show`: OWNER/REPO's evaluations from a running stack (`GET /api/ct/...`).
pub async fn show(url: &str, repo: &str, limit: usize, json: bool) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let repo = vaia_core::Repository::new(repo)
        .with_context(|| format!("repository {repo:?} (expected OWNER/NAME)"))?;
    let body: serde_json::Value = crate::client::Client::new(url)
        .get_json(&format!("/api/ct/{repo}?limit={limit}"))
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    let evaluations: Vec<vaia_ct_budget::Evaluation> =
        serde_json::from_value(body["evaluations"].clone()).context("evaluations")?;
    print!("{}", render_evaluations(&repo, &evaluations));
    Ok(())
}

/// `vaia ct evaluate`: one scheduled evaluation now on a running stack
/// (`POST /api/ct/evaluate`).
pub async fn evaluate(url: &str, json: bool) -> anyhow::Result<()> {
    let run: vaia_ct_budget::scheduled::ScheduledRun = crate::client::Client::new(url)
        .post_for_json("/api/ct/evaluate")
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&run)?);
    } else {
        print!("{}", render_scheduled(&run));
    }
    Ok(())
}

/// One line of counts, then the training jobs queued.
pub fn render_scheduled(run: &vaia_ct_budget::scheduled::ScheduledRun) -> String {
    let outcomes: Vec<String> = run
        .outcomes
        .iter()
        .map(|(outcome, n)| format!("{n} {outcome}"))
        .collect();
    let mut out = format!(
        "evaluated {} repositor{}{}; {} training job{} queued\n",
        run.evaluated,
        if run.evaluated == 1 { "y" } else { "ies" },
        if outcomes.is_empty() {
            String::new()
        } else {
            format!(" ({})", outcomes.join(", "))
        },
        run.queued.len(),
        if run.queued.len() == 1 { "" } else { "s" },
    );
    for job in &run.queued {
        out.push_str(&format!("  queued {job}\n"));
    }
    out
}

/// `vaia data pending`: the repository's pending data volume, from a running stack.
pub async fn pending(url: &str, repo: &str, json: bool) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let repo = vaia_core::Repository::new(repo)
        .with_context(|| format!("repository {repo:?} (expected OWNER/NAME)"))?;
    let body: serde_json::Value = crate::client::Client::new(url)
        .get_json(&format!("/api/data/{repo}/pending"))
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    let v: vaia_data_watcher::Volume = serde_json::from_value(body).context("pending data")?;
    println!("{}", render_pending(&repo, v));
    Ok(())
}

pub fn render_pending(repo: &vaia_core::Repository, v: vaia_data_watcher::Volume) -> String {
    format!(
        "{repo}: {} bytes pending in {} object{}",
        v.bytes,
        v.objects,
        if v.objects == 1 { "" } else { "s" }
    )
}

fn number(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.4}"))
}

/// The latest evaluation in full, then one line per evaluation, newest first.
pub fn render_evaluations(
    repo: &vaia_core::Repository,
    evaluations: &[vaia_ct_budget::Evaluation],
) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let Some(latest) = evaluations.first() else {
        let _ = writeln!(out, "{repo}: no CT evaluation recorded");
        return out;
    };
    let b = &latest.budget;
    let _ = writeln!(out, "{repo} (prod {})", latest.prod_version);
    let _ = writeln!(out, "  latest      {}", latest.at.to_rfc3339());
    let _ = writeln!(out, "  outcome     {}", b.outcome.as_str());
    let _ = writeln!(
        out,
        "  budget      {} (threshold {})",
        number(b.budget),
        b.threshold
    );
    let _ = writeln!(
        out,
        "  drift       {} ({})",
        number(b.drift),
        latest.drift_origin.as_deref().unwrap_or("no reading")
    );
    let _ = writeln!(
        out,
        "  delta rows  {}",
        b.delta_rows
            .map_or_else(|| "unknown".into(), |d| d.to_string())
    );
    if let Some(s) = &latest.newest_snapshot {
        let _ = writeln!(out, "  snapshot    {} {}", s.path, s.md5);
    }
    if let Some(v) = latest.pending_data {
        let _ = writeln!(
            out,
            "  pending     {} bytes in {} objects (at the evaluation)",
            v.bytes, v.objects
        );
    }
    if let Some(status) = &latest.job_status {
        let _ = writeln!(
            out,
            "  training    {status}{}",
            latest
                .job
                .as_deref()
                .map(|j| format!(" (job {j})"))
                .unwrap_or_default()
        );
    }
    for r in &b.reasons {
        let _ = writeln!(out, "  - {r}");
    }
    let _ = writeln!(
        out,
        "\n  {:<26} {:<13} {:>8} {:>7} {:>10}",
        "at", "outcome", "budget", "drift", "Δrows"
    );
    for e in evaluations {
        let _ = writeln!(
            out,
            "  {:<26} {:<13} {:>8} {:>7} {:>10}",
            e.at.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            e.budget.outcome.as_str(),
            number(e.budget.budget),
            e.budget
                .drift
                .map_or_else(|| "-".into(), |d| format!("{d:.3}")),
            e.budget
                .delta_rows
                .map_or_else(|| "-".into(), |d| d.to_string()),
        );
    }
    out
}
