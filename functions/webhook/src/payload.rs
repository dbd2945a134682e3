//! What a verified delivery asks for. The payload is read into small typed views (only the
//! fields vaia needs; serde skips the rest) and classified as a ping, a run to create, or
//! something to ignore. Bad input is an error naming the JSON path, or the line and column
//! for JSON that does not parse.
//!
//! A run is created for:
//! - `push` of a branch that is the repository's default branch, with a head commit (not a
//!   deletion, not a tag);
//! - `workflow_run` with action `completed` and conclusion `success`, on the default
//!   branch, from the repository itself (not a fork's pull request whose branch happens to
//!   carry the default branch's name).
//!
//! Everything else is ignored with a reason.

use serde::Deserialize;
use vaia_core::{CommitSha, IdError, Repository};

/// Trigger kinds this function records on the runs it creates.
pub const KIND_PUSH: &str = "push";
pub const KIND_WORKFLOW_RUN: &str = "workflow_run";

/// What a delivery asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Pong {
        zen: Option<String>,
        hook_id: Option<u64>,
    },
    Ignore(String),
    Create(Candidate),
}

/// A run to create (or find) for one commit.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub repository: Repository,
    pub commit: CommitSha,
    pub branch: String,
    pub kind: &'static str,
    pub actor: Option<String>,
}

/// Why a signed body cannot be acted on.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// Not JSON; serde_json's message ends with "at line L column C".
    #[error("malformed JSON body: {0}")]
    Syntax(serde_json::Error),
    /// JSON, but a field has the wrong type ("at line L column C").
    #[error("invalid {event} payload: {source}")]
    Shape {
        event: &'static str,
        source: serde_json::Error,
    },
    #[error("the body is form-encoded; set the webhook's content type to application/json")]
    FormEncoded,
    #[error("{path}: {reason}")]
    Field { path: &'static str, reason: String },
}

impl PayloadError {
    /// The JSON path of the offending field, when there is one.
    pub fn path(&self) -> Option<&'static str> {
        match self {
            PayloadError::Field { path, .. } => Some(path),
            _ => None,
        }
    }

    /// The line and column of a JSON error, when there is one.
    pub fn position(&self) -> Option<(usize, usize)> {
        match self {
            PayloadError::Syntax(e) | PayloadError::Shape { source: e, .. } => {
                Some((e.line(), e.column()))
            }
            _ => None,
        }
    }
}

fn missing(path: &'static str) -> PayloadError {
    PayloadError::Field {
        path,
        reason: "missing or null".into(),
    }
}

fn invalid(path: &'static str, e: IdError) -> PayloadError {
    PayloadError::Field {
        path,
        reason: e.to_string(),
    }
}

fn required<T>(value: Option<T>, path: &'static str) -> Result<T, PayloadError> {
    value.ok_or_else(|| missing(path))
}

fn required_str(value: Option<String>, path: &'static str) -> Result<String, PayloadError> {
    match value {
        Some(s) if !s.is_empty() => Ok(s),
        Some(_) => Err(PayloadError::Field {
            path,
            reason: "empty".into(),
        }),
        None => Err(missing(path)),
    }
}

fn parse<'a, T: Deserialize<'a>>(event: &'static str, body: &'a [u8]) -> Result<T, PayloadError> {
    serde_json::from_slice(body).map_err(|e| {
        if body.starts_with(b"payload=") {
            PayloadError::FormEncoded
        } else if e.is_data() {
            PayloadError::Shape { event, source: e }
        } else {
            PayloadError::Syntax(e)
        }
    })
}

fn ignore(reason: impl Into<String>) -> Result<Action, PayloadError> {
    Ok(Action::Ignore(reason.into()))
}

/// Event names and refs come from the request; keep the ones echoed in answers short.
fn clip(s: &str) -> String {
    const MAX: usize = 100;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut cut = MAX;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &s[..cut])
}

/// Classifies the body of a delivery of `event` (the `X-GitHub-Event` header). It does
/// not check the signature: give it only bodies that passed [`crate::verify_signature`].
pub fn classify(event: &str, body: &[u8]) -> Result<Action, PayloadError> {
    match event {
        "ping" => ping(body),
        "push" => push(body),
        "workflow_run" => workflow_run(body),
        other => {
            // Still refuse a body that is not JSON: it was signed, so the sender is
            // misconfigured, and saying so beats a silent 202.
            parse::<serde::de::IgnoredAny>("event", body)?;
            ignore(format!(
                "event {:?} is not handled; vaia starts runs from push and workflow_run",
                clip(other)
            ))
        }
    }
}

#[derive(Deserialize)]
struct Ping {
    zen: Option<String>,
    hook_id: Option<u64>,
}

fn ping(body: &[u8]) -> Result<Action, PayloadError> {
    let p: Ping = parse("ping", body)?;
    Ok(Action::Pong {
        zen: p.zen,
        hook_id: p.hook_id,
    })
}

#[derive(Deserialize)]
struct RepositoryView {
    full_name: Option<String>,
    default_branch: Option<String>,
}

#[derive(Deserialize)]
struct Login {
    login: Option<String>,
}

#[derive(Deserialize)]
struct Push {
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    after: Option<String>,
    deleted: Option<bool>,
    head_commit: Option<HeadCommit>,
    repository: Option<RepositoryView>,
    pusher: Option<Pusher>,
    sender: Option<Login>,
}

#[derive(Deserialize)]
struct HeadCommit {
    id: Option<String>,
}

#[derive(Deserialize)]
struct Pusher {
    name: Option<String>,
}

fn is_zero_sha(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b == b'0')
}

fn push(body: &[u8]) -> Result<Action, PayloadError> {
    let p: Push = parse("push", body)?;
    let git_ref = required_str(p.git_ref, "$.ref")?;
    if let Some(tag) = git_ref.strip_prefix("refs/tags/") {
        return ignore(format!(
            "tag push ({}); runs start from branch pushes",
            clip(tag)
        ));
    }
    let Some(branch) = git_ref.strip_prefix("refs/heads/") else {
        return ignore(format!("push to {}, which is not a branch", clip(&git_ref)));
    };
    if p.deleted == Some(true) || p.after.as_deref().is_some_and(is_zero_sha) {
        return ignore(format!("branch {} was deleted", clip(branch)));
    }
    let repo = required(p.repository, "$.repository")?;
    let default_branch = required_str(repo.default_branch, "$.repository.default_branch")?;
    if branch != default_branch {
        return ignore(format!(
            "push to branch {}; runs start only from the default branch {}",
            clip(branch),
            clip(&default_branch)
        ));
    }
    let Some(head) = p.head_commit else {
        return ignore(format!("push to {} without a head commit", clip(branch)));
    };
    let repository = Repository::new(required_str(repo.full_name, "$.repository.full_name")?)
        .map_err(|e| invalid("$.repository.full_name", e))?;
    let after =
        CommitSha::new(required_str(p.after, "$.after")?).map_err(|e| invalid("$.after", e))?;
    let head_id = CommitSha::new(required_str(head.id, "$.head_commit.id")?)
        .map_err(|e| invalid("$.head_commit.id", e))?;
    if head_id != after {
        return Err(PayloadError::Field {
            path: "$.head_commit.id",
            reason: format!("{head_id} does not match $.after ({after})"),
        });
    }
    let actor = p
        .pusher
        .and_then(|p| p.name)
        .or_else(|| p.sender.and_then(|s| s.login))
        .filter(|a| !a.is_empty());
    Ok(Action::Create(Candidate {
        repository,
        commit: after,
        branch: branch.to_string(),
        kind: KIND_PUSH,
        actor,
    }))
}

#[derive(Deserialize)]
struct WorkflowRunEvent {
    action: Option<String>,
    workflow_run: Option<WorkflowRun>,
    repository: Option<RepositoryView>,
    sender: Option<Login>,
}

#[derive(Deserialize)]
struct WorkflowRun {
    head_sha: Option<String>,
    head_branch: Option<String>,
    conclusion: Option<String>,
    head_repository: Option<RepositoryName>,
}

#[derive(Deserialize)]
struct RepositoryName {
    full_name: Option<String>,
}

fn workflow_run(body: &[u8]) -> Result<Action, PayloadError> {
    let e: WorkflowRunEvent = parse("workflow_run", body)?;
    let action = required_str(e.action, "$.action")?;
    if action != "completed" {
        return ignore(format!(
            "workflow_run action {:?}; runs start only from completed workflow runs",
            clip(&action)
        ));
    }
    let run = required(e.workflow_run, "$.workflow_run")?;
    match run.conclusion.as_deref() {
        Some("success") => {}
        Some(other) => {
            return ignore(format!(
                "workflow run concluded {:?}, not \"success\"",
                clip(other)
            ))
        }
        None => return ignore("workflow run completed without a conclusion"),
    }
    let repo = required(e.repository, "$.repository")?;
    let default_branch = required_str(repo.default_branch, "$.repository.default_branch")?;
    let branch = match run.head_branch {
        Some(b) if b == default_branch => b,
        Some(b) => {
            return ignore(format!(
                "workflow run on branch {}; runs start only from the default branch {}",
                clip(&b),
                clip(&default_branch)
            ))
        }
        None => return ignore("workflow run without a head branch"),
    };
    let full_name = required_str(repo.full_name, "$.repository.full_name")?;
    let repository =
        Repository::new(full_name).map_err(|e| invalid("$.repository.full_name", e))?;
    if let Some(head_repo) = run.head_repository.and_then(|r| r.full_name) {
        if !head_repo.eq_ignore_ascii_case(repository.as_str()) {
            return ignore(format!(
                "workflow run for commits of {}, not of {repository}",
                clip(&head_repo)
            ));
        }
    }
    let commit = CommitSha::new(required_str(run.head_sha, "$.workflow_run.head_sha")?)
        .map_err(|e| invalid("$.workflow_run.head_sha", e))?;
    let actor = e.sender.and_then(|s| s.login).filter(|a| !a.is_empty());
    Ok(Action::Create(Candidate {
        repository,
        commit,
        branch,
        kind: KIND_WORKFLOW_RUN,
        actor,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_push_to_default_branch_creates() {
        let sha = "a".repeat(40);
        let body = format!(
            r#"{{"ref":"refs/heads/main","after":"{sha}","head_commit":{{"id":"{sha}"}},
               "repository":{{"full_name":"o/r","default_branch":"main"}},
               "sender":{{"login":"octo"}}}}"#
        );
        let Action::Create(c) = classify("push", body.as_bytes()).unwrap() else {
            panic!("not a create");
        };
        assert_eq!(c.repository.as_str(), "o/r");
        assert_eq!(c.commit.as_str(), sha);
        assert_eq!(c.branch, "main");
        assert_eq!(c.actor.as_deref(), Some("octo"));
    }

    #[test]
    fn errors_name_path_or_position() {
        let e = classify("push", b"{\n  \"ref\": 5\n}").unwrap_err();
        assert_eq!(e.position().map(|p| p.0), Some(2), "{e}");
        let e = classify("push", b"{\"ref\": \"refs/heads/main\"").unwrap_err();
        assert!(matches!(e, PayloadError::Syntax(_)), "{e}");
        let e = classify("issues", b"payload=%7B%7D").unwrap_err();
        assert!(matches!(e, PayloadError::FormEncoded), "{e}");
        let e = classify("push", br#"{"ref":"refs/heads/main","repository":{}}"#).unwrap_err();
        assert_eq!(e.path(), Some("$.repository.default_branch"));
    }

    #[test]
    fn long_names_are_clipped() {
        let long = "x".repeat(500);
        let Ok(Action::Ignore(reason)) = classify(&long, b"{}") else {
            panic!("not ignored");
        };
        assert!(reason.len() < 200, "{reason}");
    }
}
