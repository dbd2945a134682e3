//! Table tests over the fixtures in events/github: what is ignored (202), what is refused
//! (400, 413), and ping. Variants are derived from the real payloads by editing the named
//! fields, so everything else stays as GitHub sends it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{json, Value};
use vaia_webhook::MAX_BODY_BYTES;

fn edit(name: &str, f: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v = fixture_json(name);
    f(&mut v);
    serde_json::to_vec_pretty(&v).unwrap()
}

#[tokio::test]
async fn ping_answers_pong_with_zen_and_hook_id() {
    let h = Harness::new();
    let r = h.deliver("ping", "d-ping", &fixture("ping.json")).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.body,
        json!({
            "status": "pong",
            "zen": "Anything added dilutes everything else.",
            "hook_id": 109948940
        })
    );
    assert!(h.runs().await.is_empty());
    // A minimal ping still pongs.
    let r = h.deliver("ping", "d-ping-2", b"{}").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!({ "status": "pong" }));
}

#[tokio::test]
async fn ignored_deliveries_answer_202_with_a_reason_and_create_nothing() {
    let zero = "0".repeat(40);
    let sha = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";
    let cases: Vec<(&str, &str, Vec<u8>, &str)> = vec![
        (
            "tag deletion (fixture)",
            "push",
            fixture("push.tag.json"),
            "tag push",
        ),
        (
            "tag creation",
            "push",
            edit("push.json", |v| {
                v["ref"] = "refs/tags/v1.0.0".into();
                v["base_ref"] = "refs/heads/master".into();
            }),
            "tag push",
        ),
        (
            "push to another branch (fixture)",
            "push",
            fixture("push.other-branch.json"),
            "default branch master",
        ),
        (
            "default branch deleted",
            "push",
            edit("push.json", |v| {
                v["deleted"] = true.into();
                v["before"] = sha.into();
                v["after"] = zero.clone().into();
                v["head_commit"] = Value::Null;
                v["commits"] = json!([]);
            }),
            "was deleted",
        ),
        (
            "after is all zeros",
            "push",
            edit("push.json", |v| {
                v["after"] = zero.clone().into();
            }),
            "was deleted",
        ),
        (
            "other branch deleted",
            "push",
            edit("push.other-branch.json", |v| {
                v["deleted"] = true.into();
                v["after"] = zero.clone().into();
                v["head_commit"] = Value::Null;
            }),
            "was deleted",
        ),
        (
            "push without a head commit",
            "push",
            edit("push.json", |v| {
                v["head_commit"] = Value::Null;
            }),
            "without a head commit",
        ),
        (
            "push of a non-branch ref",
            "push",
            edit("push.json", |v| {
                v["ref"] = "refs/notes/commits".into();
            }),
            "not a branch",
        ),
        (
            "deployment_status (fixture)",
            "deployment_status",
            fixture("deployment_status.json"),
            "not handled",
        ),
        (
            "issues event",
            "issues",
            b"{\"action\":\"opened\"}".to_vec(),
            "not handled",
        ),
        (
            "workflow_run requested",
            "workflow_run",
            edit("workflow_run.completed.json", |v| {
                v["action"] = "requested".into();
                v["workflow_run"]["status"] = "queued".into();
                v["workflow_run"]["conclusion"] = Value::Null;
            }),
            "only from completed",
        ),
        (
            "workflow_run in_progress",
            "workflow_run",
            edit("workflow_run.completed.json", |v| {
                v["action"] = "in_progress".into();
            }),
            "only from completed",
        ),
        (
            "workflow_run failed",
            "workflow_run",
            edit("workflow_run.completed.json", |v| {
                v["workflow_run"]["conclusion"] = "failure".into();
            }),
            "\"failure\"",
        ),
        (
            "workflow_run cancelled",
            "workflow_run",
            edit("workflow_run.completed.json", |v| {
                v["workflow_run"]["conclusion"] = "cancelled".into();
            }),
            "\"cancelled\"",
        ),
        (
            "workflow_run on another branch",
            "workflow_run",
            edit("workflow_run.completed.json", |v| {
                v["workflow_run"]["head_branch"] = "feature".into();
            }),
            "default branch master",
        ),
        (
            "workflow_run from a fork's branch named like the default",
            "workflow_run",
            edit("workflow_run.completed.json", |v| {
                v["workflow_run"]["head_repository"]["full_name"] = "mallory/octo-repo".into();
            }),
            "mallory/octo-repo",
        ),
    ];
    for (what, event, body, expect) in cases {
        let h = Harness::new();
        let r = h.deliver(event, "d-ignored", &body).await;
        assert_eq!(r.status, 202, "{what}: {r:?}");
        assert_eq!(r.body["status"], "ignored", "{what}");
        assert!(reason(&r).contains(expect), "{what}: {:?}", reason(&r));
        assert!(h.runs().await.is_empty(), "{what}");
        assert!(h.queue.sent.lock().unwrap().is_empty(), "{what}");
        // Recorded as completed: a redelivery gets the same answer.
        assert_eq!(h.deliver(event, "d-ignored", &body).await, r, "{what}");
    }
}

/// (what, edit, text the reason must contain, JSON path).
type FieldCase = (&'static str, fn(&mut Value), &'static str, &'static str);

/// A case the handler must refuse before storing anything.
struct Refused {
    what: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    status: u16,
    /// Must appear in the reason.
    names: &'static str,
    path: Option<&'static str>,
}

fn signed(h: &Harness, event: &str, body: Vec<u8>) -> (Vec<(String, String)>, Vec<u8>) {
    (h.headers(event, "d-bad", &body), body)
}

fn without(headers: &[(String, String)], name: &str) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case(name))
        .cloned()
        .collect()
}

fn with(headers: &[(String, String)], name: &str, value: &str) -> Vec<(String, String)> {
    let mut out = without(headers, name);
    out.push((name.to_string(), value.to_string()));
    out
}

fn refused_cases(h: &Harness) -> Vec<Refused> {
    let push = fixture("push.json");
    let good = h.headers("push", "d-bad", &push);
    let mut cases = Vec::new();
    let mut case =
        |what, (headers, body): (Vec<(String, String)>, Vec<u8>), status, names, path| {
            cases.push(Refused {
                what,
                headers,
                body,
                status,
                names,
                path,
            })
        };

    // Headers.
    case(
        "missing X-GitHub-Event",
        (without(&good, "X-GitHub-Event"), push.clone()),
        400,
        "X-GitHub-Event",
        None,
    );
    case(
        "empty X-GitHub-Event",
        (with(&good, "X-GitHub-Event", ""), push.clone()),
        400,
        "X-GitHub-Event",
        None,
    );
    case(
        "missing X-GitHub-Delivery",
        (without(&good, "X-GitHub-Delivery"), push.clone()),
        400,
        "X-GitHub-Delivery",
        None,
    );
    case(
        "empty X-GitHub-Delivery",
        (with(&good, "X-GitHub-Delivery", ""), push.clone()),
        400,
        "X-GitHub-Delivery",
        None,
    );
    for bad in [
        "../../etc/passwd",
        "has space",
        "semi;colon",
        &"x".repeat(129),
    ] {
        case(
            "invalid X-GitHub-Delivery",
            (with(&good, "X-GitHub-Delivery", bad), push.clone()),
            400,
            "X-GitHub-Delivery",
            None,
        );
    }
    let mut twice = good.clone();
    twice.push(("x-github-event".into(), "ping".into()));
    case(
        "X-GitHub-Event twice",
        (twice, push.clone()),
        400,
        "X-GitHub-Event",
        None,
    );

    // Bodies that are not JSON.
    let mut truncated = push.clone();
    truncated.truncate(push.len() / 2);
    case(
        "truncated JSON",
        signed(h, "push", truncated),
        400,
        "line",
        None,
    );
    case(
        "not JSON at all",
        signed(h, "push", b"hello".to_vec()),
        400,
        "line 1 column 1",
        None,
    );
    case(
        "empty body",
        signed(h, "push", Vec::new()),
        400,
        "line 1 column 0",
        None,
    );
    case(
        "trailing garbage",
        signed(h, "push", [push.as_slice(), b"}"].concat()),
        400,
        "trailing",
        None,
    );
    case(
        "unhandled event, not JSON",
        signed(h, "issues", b"{oops".to_vec()),
        400,
        "line 1 column 2",
        None,
    );
    case(
        "ping, not JSON",
        signed(h, "ping", b"[".to_vec()),
        400,
        "line 1",
        None,
    );
    case(
        "form-encoded body",
        signed(
            h,
            "push",
            b"payload=%7B%22ref%22%3A%22refs%2Fheads%2Fmaster%22%7D".to_vec(),
        ),
        400,
        "application/json",
        None,
    );
    case(
        "ref is a number",
        signed(h, "push", edit("push.json", |v| v["ref"] = 5.into())),
        400,
        "line 2 column",
        None,
    );
    case(
        "push body is an array",
        signed(h, "push", b"[1, 2]".to_vec()),
        400,
        "line 1",
        None,
    );

    // Fields.
    let field = |f: fn(&mut Value), what, names, path| (what, f, names, path);
    let fields: Vec<FieldCase> = vec![
        field(
            |v| {
                v.as_object_mut().unwrap().remove("ref");
            },
            "ref missing",
            "$.ref",
            "$.ref",
        ),
        field(
            |v| v["repository"] = Value::Null,
            "repository null",
            "$.repository",
            "$.repository",
        ),
        field(
            |v| {
                v["repository"]
                    .as_object_mut()
                    .unwrap()
                    .remove("default_branch");
            },
            "default_branch missing",
            "$.repository.default_branch",
            "$.repository.default_branch",
        ),
        field(
            |v| v["repository"]["full_name"] = "not-a-repo".into(),
            "full_name without owner",
            "owner/name",
            "$.repository.full_name",
        ),
        field(
            |v| v["repository"]["full_name"] = "a/b/c".into(),
            "full_name with two slashes",
            "$.repository.full_name",
            "$.repository.full_name",
        ),
        field(
            |v| v["repository"]["full_name"] = "-bad/name".into(),
            "full_name bad owner",
            "$.repository.full_name",
            "$.repository.full_name",
        ),
        field(
            |v| {
                v["repository"].as_object_mut().unwrap().remove("full_name");
            },
            "full_name missing",
            "$.repository.full_name",
            "$.repository.full_name",
        ),
        field(
            |v| v["head_commit"]["id"] = "xyz".into(),
            "head commit id short",
            "40 lowercase hex",
            "$.head_commit.id",
        ),
        field(
            |v| v["head_commit"]["id"] = "6113728F27AE82C7B1A177C8D03F9E96E0ADF246".into(),
            "head commit id uppercase",
            "$.head_commit.id",
            "$.head_commit.id",
        ),
        field(
            |v| v["head_commit"]["id"] = "6113728f27ae82c7b1a177c8d03f9e96e0adf24g".into(),
            "head commit id non-hex",
            "$.head_commit.id",
            "$.head_commit.id",
        ),
        field(
            |v| v["head_commit"]["id"] = "1111111111111111111111111111111111111111".into(),
            "head commit id not after",
            "does not match $.after",
            "$.head_commit.id",
        ),
        field(
            |v| {
                v["head_commit"].as_object_mut().unwrap().remove("id");
            },
            "head commit id missing",
            "$.head_commit.id",
            "$.head_commit.id",
        ),
        field(
            |v| v["after"] = "abc".into(),
            "after short",
            "$.after",
            "$.after",
        ),
        field(
            |v| {
                v.as_object_mut().unwrap().remove("after");
            },
            "after missing",
            "$.after",
            "$.after",
        ),
    ];
    for (what, f, names, path) in fields {
        case(
            what,
            signed(h, "push", edit("push.json", f)),
            400,
            names,
            Some(path),
        );
    }
    let wfr: Vec<FieldCase> = vec![
        field(
            |v| v["workflow_run"]["head_sha"] = "nope".into(),
            "workflow head_sha invalid",
            "$.workflow_run.head_sha",
            "$.workflow_run.head_sha",
        ),
        field(
            |v| {
                v["workflow_run"]
                    .as_object_mut()
                    .unwrap()
                    .remove("head_sha");
            },
            "workflow head_sha missing",
            "$.workflow_run.head_sha",
            "$.workflow_run.head_sha",
        ),
        field(
            |v| {
                v.as_object_mut().unwrap().remove("workflow_run");
            },
            "workflow_run missing",
            "$.workflow_run",
            "$.workflow_run",
        ),
        field(
            |v| {
                v.as_object_mut().unwrap().remove("action");
            },
            "action missing",
            "$.action",
            "$.action",
        ),
        field(
            |v| v["repository"]["full_name"] = "octo-repo".into(),
            "workflow repository invalid",
            "$.repository.full_name",
            "$.repository.full_name",
        ),
    ];
    for (what, f, names, path) in wfr {
        case(
            what,
            signed(h, "workflow_run", edit("workflow_run.completed.json", f)),
            400,
            names,
            Some(path),
        );
    }

    // Size: over the limit is 413 whatever the signature, so no HMAC work is done for it.
    let big = vec![b' '; MAX_BODY_BYTES + 1];
    case(
        "body over 6 MB, signed",
        signed(h, "push", big.clone()),
        413,
        "limit",
        None,
    );
    case(
        "body over 6 MB, unsigned",
        (without(&good, "X-Hub-Signature-256"), big.clone()),
        413,
        "limit",
        None,
    );
    case(
        "body over 6 MB, bad signature",
        (good.clone(), big),
        413,
        "limit",
        None,
    );
    cases
}

#[tokio::test]
async fn refused_requests_answer_with_the_reason_and_store_nothing() {
    let probe = Harness::new();
    let cases = refused_cases(&probe);
    assert!(cases.len() >= 40, "{}", cases.len());
    for c in cases {
        let h = Harness::new();
        let r = h.call(&c.headers, &c.body).await;
        assert_eq!(r.status, c.status, "{}: {r:?}", c.what);
        assert_eq!(r.body["status"], "error", "{}", c.what);
        let why = reason(&r);
        assert!(
            why.contains(c.names),
            "{}: reason {why:?} does not name {:?}",
            c.what,
            c.names
        );
        if let Some(path) = c.path {
            assert_eq!(r.body["path"], path, "{}: {r:?}", c.what);
        }
        if why.contains(" at line ") {
            assert!(
                r.body["line"].is_u64() && r.body["column"].is_u64(),
                "{}: {r:?}",
                c.what
            );
        }
        assert!(!text(&r).contains(SECRET), "{}", c.what);
        assert_eq!(h.port_calls(), 0, "{}: touched a port", c.what);
        assert!(h.runs().await.is_empty(), "{}", c.what);
    }
}

#[tokio::test]
async fn a_body_of_exactly_the_limit_is_accepted() {
    let h = Harness::new();
    let mut body = b"{}".to_vec();
    body.resize(MAX_BODY_BYTES, b' ');
    let r = h.deliver("issues", "d-limit", &body).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
}

#[tokio::test]
async fn header_names_are_case_insensitive() {
    let h = Harness::new();
    let body = fixture("push.json");
    let headers: Vec<(String, String)> = h
        .headers("push", "d-case", &body)
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    assert_eq!(h.call(&headers, &body).await.status, 201);
    let headers: Vec<(String, String)> = h
        .headers("push", "d-case-2", &body)
        .into_iter()
        .map(|(k, v)| (k.to_ascii_uppercase(), v))
        .collect();
    assert_eq!(h.call(&headers, &body).await.status, 200);
}

#[tokio::test]
async fn the_large_push_fixture_creates_a_run() {
    let h = Harness::new();
    let body = fixture("push.large.json");
    assert!(body.len() >= 25 * 1024, "{}", body.len());
    let r = h.deliver("push", "d-large", &body).await;
    assert_eq!(r.status, 201, "{r:?}");
}
