//! `vaia runs ...` and `vaia evidence upload`: talk to a running stack over its API and
//! print for people (or JSON with `--json`).

use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;
use vaia_core::evidence::{Manifest, MANIFEST_FILE};
use vaia_core::ports::RunCursor;
use vaia_core::run::EventKind;
use vaia_core::{CommitSha, ImageDigest, Repository};

use crate::api::{RunDetail, RunList};
use crate::client::{pack, read_bundle, Client};

/// Which pages `vaia runs list` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pages {
    /// One page, from the start or after a cursor.
    One { after: Option<String> },
    /// Every page, following `next` to the end.
    All,
}

pub async fn list(url: &str, limit: usize, pages: Pages, json: bool) -> Result<()> {
    let client = Client::new(url);
    let runs = match pages {
        Pages::One { after } => {
            if let Some(a) = &after {
                RunCursor::parse(a).with_context(|| format!("--after {a:?}"))?;
            }
            client.runs(limit, after.as_deref()).await?
        }
        Pages::All => {
            let mut all = client.runs(limit, None).await?;
            while let Some(next) = all.next.take() {
                let mut page = client.runs(limit, Some(&next)).await?;
                all.runs.append(&mut page.runs);
                all.next = page.next;
            }
            all
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
    } else {
        print!("{}", render_list(&runs));
        if let Some(next) = &runs.next {
            println!("more: vaia runs list --after {next} (or --all)");
        }
    }
    Ok(())
}

pub fn render_list(list: &RunList) -> String {
    let mut out = format!(
        "{:<25}  {:<12}  {:<24}  {:<7}  {:<8}  {}\n",
        "RUN", "STATE", "REPOSITORY", "COMMIT", "VERSION", "GATES"
    );
    for r in &list.runs {
        let gates: Vec<String> = r.gates.iter().map(|(g, o)| format!("{g}:{o}")).collect();
        let _ = writeln!(
            out,
            "{:<25}  {:<12}  {:<24}  {:<7}  {:<8}  {}",
            r.id,
            r.state.as_str(),
            r.repository.as_str(),
            r.commit.short(),
            r.version.as_deref().unwrap_or("-"),
            if gates.is_empty() {
                "-".into()
            } else {
                gates.join(" ")
            }
        );
    }
    if list.runs.is_empty() {
        out.push_str("(no runs yet)\n");
    }
    out
}

pub async fn show(url: &str, id: &str, json: bool) -> Result<()> {
    let detail = Client::new(url).run(id).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&detail)?);
    } else {
        print!("{}", render_detail(&detail));
    }
    Ok(())
}

pub fn render_detail(d: &RunDetail) -> String {
    let r = &d.run;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "run {}  {}@{}  {}",
        r.id,
        r.repository,
        r.commit.short(),
        r.state
    );
    if let Some(v) = &r.candidate.version {
        let prev = r
            .candidate
            .previous_version
            .as_ref()
            .map(|p| format!(" (after {p})"))
            .unwrap_or_default();
        let _ = writeln!(out, "version {v}{prev}");
    }
    if let Some(f) = &r.failure {
        let _ = writeln!(out, "failed: {}", f.reason);
    }
    for (gate, v) in &d.verdicts {
        let _ = writeln!(out, "gate {gate}: {} — {}", v.outcome.as_str(), v.summary);
        for f in v.findings.iter().take(20) {
            let at = f
                .location
                .as_deref()
                .map(|l| format!(" at {l}"))
                .unwrap_or_default();
            let _ = writeln!(out, "  [{:?}] {}{at}: {}", f.severity, f.rule, f.message);
        }
        if v.findings.len() > 20 {
            let _ = writeln!(out, "  … {} more findings", v.findings.len() - 20);
        }
    }
    let _ = writeln!(out, "log:");
    for e in &d.events {
        let what = match (e.kind, e.to) {
            (EventKind::Transition, Some(to)) => format!("{} → {}", e.from, to),
            (EventKind::Refused, Some(to)) => format!("{} ↛ {} refused", e.from, to),
            _ => format!("{} note", e.from),
        };
        let _ = writeln!(
            out,
            "  {:>3} {} {:<28} {}  [{}]",
            e.seq,
            e.at.format("%H:%M:%S%.3f"),
            what,
            e.reason,
            e.actor
        );
    }
    out
}

pub async fn action(
    url: &str,
    id: &str,
    action: &str,
    reason: Option<&str>,
    gate: Option<&str>,
) -> Result<()> {
    let v = Client::new(url)
        .post_action(id, action, reason, gate)
        .await?;
    println!("{action} requested for run {id}: {v}");
    println!("the orchestrator decides; see `vaia runs show {id}` for the outcome");
    Ok(())
}

/// `vaia evidence pack`: writes the archive of `dir` to `out`, by default `bundle.tar`
/// beside `dir` (in its parent: inside it, it would be a file the manifest does not list).
pub fn pack_command(dir: &Path, out: Option<&Path>) -> Result<()> {
    let (manifest, archive) = crate::client::pack_dir(dir)?;
    let out = match out {
        Some(out) => out.to_path_buf(),
        None => std::fs::canonicalize(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .with_file_name(vaia_core::evidence::ARCHIVE_FILE),
    };
    std::fs::write(&out, &archive).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "packed {} files and the manifest for {}@{} into {} ({} bytes)",
        manifest.files.len(),
        manifest.repository,
        manifest.commit.short(),
        out.display(),
        archive.len()
    );
    Ok(())
}

/// `vaia evidence upload`: a directory `vaia evidence collect` wrote is sent with its own
/// manifest (checked against the files; `--repo`, `--commit`, `--image-digest` must agree
/// with it when given); a directory without one gets a manifest made from the flags.
/// Either way the bundle goes as one archive in one request (`PUT .../bundle.tar`).
pub async fn upload(
    url: &str,
    token: Option<String>,
    dir: &Path,
    repo: Option<&str>,
    commit: Option<&str>,
    image: Option<&str>,
) -> Result<()> {
    let repo = repo.map(Repository::new).transpose().context("--repo")?;
    let commit = commit.map(CommitSha::new).transpose().context("--commit")?;
    let image = image
        .map(ImageDigest::new)
        .transpose()
        .context("--image-digest")?;
    let files = read_bundle(dir)?;
    let manifest_path = dir.join(MANIFEST_FILE);
    let client = match token {
        Some(t) => Client::with_token(url, Some(&t)),
        None => Client::new(url),
    };
    let archive = if manifest_path.exists() {
        let bytes = std::fs::read(&manifest_path)
            .with_context(|| format!("reading {}", manifest_path.display()))?;
        let manifest = Manifest::parse(&bytes, &manifest_path.display().to_string())?;
        let disagree =
            |flag: &str, given: &dyn std::fmt::Display, listed: &dyn std::fmt::Display| {
                anyhow::anyhow!(
                    "{flag} {given} disagrees with {}: {listed}",
                    manifest_path.display()
                )
            };
        if let Some(r) = repo.as_ref().filter(|r| **r != manifest.repository) {
            return Err(disagree("--repo", r, &manifest.repository));
        }
        if let Some(c) = commit.as_ref().filter(|c| **c != manifest.commit) {
            return Err(disagree("--commit", c, &manifest.commit));
        }
        if let Some(i) = image.as_ref().filter(|i| **i != manifest.image.digest) {
            return Err(disagree("--image-digest", i, &manifest.image.digest));
        }
        (pack(&manifest, &bytes, &files)?, manifest)
    } else {
        let (Some(repo), Some(commit), Some(image)) = (repo, commit, image) else {
            anyhow::bail!(
                "{} has no {MANIFEST_FILE}: give --repo, --commit and --image-digest",
                dir.display()
            );
        };
        let image = vaia_core::evidence::ImageRef {
            digest: image,
            base_digest: None,
        };
        let manifest =
            crate::collect::manifest_for(&repo, &commit, image, None, &files, chrono::Utc::now());
        let bytes = serde_json::to_vec_pretty(&manifest)?;
        (pack(&manifest, &bytes, &files)?, manifest)
    };
    let (archive, manifest) = archive;
    let size = archive.len();
    client.upload_archive(&manifest, archive).await?;
    println!(
        "uploaded {} files and the manifest for {}@{} as one {} ({size} bytes)",
        manifest.files.len(),
        manifest.repository,
        manifest.commit.short(),
        vaia_core::evidence::ARCHIVE_FILE
    );
    Ok(())
}
