//! `vaia registry list|show`: a repository's versions with their lineage, from a running
//! stack's registry API (`/api/registry/...`), for people (or JSON with `--json`).

use anyhow::{Context, Result};
use std::fmt::Write as _;
use vaia_core::layout::{AliasRecord, VersionRecord};
use vaia_core::Repository;

use crate::client::Client;

#[derive(serde::Deserialize)]
struct Versions {
    versions: Vec<VersionRecord>,
}

#[derive(serde::Deserialize)]
struct Aliases {
    aliases: Vec<AliasRecord>,
}

fn repository(repo: &str) -> Result<Repository> {
    Repository::new(repo).with_context(|| format!("repository {repo:?} (expected OWNER/NAME)"))
}

pub async fn list(url: &str, repo: &str, json: bool) -> Result<()> {
    let repo = repository(repo)?;
    let client = Client::new(url);
    let versions: serde_json::Value = client
        .get_json(&format!("/api/registry/{repo}/versions"))
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&versions)?);
        return Ok(());
    }
    let versions: Versions = serde_json::from_value(versions).context("versions")?;
    let aliases: Aliases = client
        .get_json(&format!("/api/registry/{repo}/aliases"))
        .await?;
    print!("{}", render_list(&versions.versions, &aliases.aliases));
    Ok(())
}

pub async fn show(url: &str, repo: &str, version: &str, json: bool) -> Result<()> {
    let repo = repository(repo)?;
    semver::Version::parse(version).with_context(|| format!("version {version:?}"))?;
    let record: serde_json::Value = Client::new(url)
        .get_json(&format!("/api/registry/{repo}/versions/{version}"))
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&record)?);
    } else {
        let record: VersionRecord = serde_json::from_value(record).context("version record")?;
        print!("{}", render_version(&repo, &record));
    }
    Ok(())
}

/// Newest first, with the aliases that point at each version.
pub fn render_list(versions: &[VersionRecord], aliases: &[AliasRecord]) -> String {
    let mut out = format!(
        "{:<10}  {:<10}  {:<7}  {:<6}  {:<12}  {:<20}  {}\n",
        "VERSION", "PREVIOUS", "COMMIT", "BUMP", "ALIASES", "CREATED", "GATES"
    );
    for v in versions {
        let names: Vec<&str> = aliases
            .iter()
            .filter(|a| a.target.version == v.version)
            .map(|a| a.alias.as_str())
            .collect();
        let gates: Vec<String> = v
            .gates
            .iter()
            .map(|(g, l)| format!("{g}:{}", l.outcome.as_str()))
            .collect();
        let _ = writeln!(
            out,
            "{:<10}  {:<10}  {:<7}  {:<6}  {:<12}  {:<20}  {}",
            v.version.to_string(),
            v.previous
                .as_ref()
                .map_or_else(|| "-".to_string(), ToString::to_string),
            &v.commit.as_str()[..7],
            v.bump.as_str(),
            if names.is_empty() {
                "-".to_string()
            } else {
                names.join(",")
            },
            v.created_at.format("%Y-%m-%d %H:%M:%S"),
            gates.join(" ")
        );
    }
    out
}

/// One version's lineage.
pub fn render_version(repo: &Repository, v: &VersionRecord) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{repo} {}", v.version);
    let _ = writeln!(out, "  run:       {}", v.run_id);
    let _ = writeln!(out, "  commit:    {}", v.commit);
    let _ = writeln!(out, "  image:     {}", v.image_digest);
    let _ = writeln!(
        out,
        "  previous:  {}",
        v.previous
            .as_ref()
            .map_or_else(|| "-".to_string(), ToString::to_string)
    );
    let _ = writeln!(out, "  bump:      {}", v.bump.as_str());
    let _ = writeln!(out, "  created:   {}", v.created_at.to_rfc3339());
    match &v.dataset {
        Some(d) => {
            let rows = d
                .rows
                .map_or_else(|| "rows unknown".to_string(), |r| format!("{r} rows"));
            let _ = writeln!(out, "  dataset:   {} (md5 {}, {rows})", d.path, d.md5);
        }
        None => {
            let _ = writeln!(out, "  dataset:   -");
        }
    }
    let _ = writeln!(out, "  gates:");
    for (g, l) in &v.gates {
        let metrics: Vec<String> = l.metrics.iter().map(|(k, m)| format!("{k}={m}")).collect();
        let _ = writeln!(
            out,
            "    {g:<9} {:<13} {:<6} {}",
            l.outcome.as_str(),
            l.stage.to_string(),
            metrics.join(" ")
        );
    }
    out
}
