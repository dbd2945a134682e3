//! The ct-budget function's trigger: an EventBridge scheduled event (a rule's `Schedule`,
//! `"source": "aws.events"`, or EventBridge Scheduler's `aws.scheduler`) runs one
//! evaluation of every repository with a `prod` version.
//!
//! The event is checked before anything is read or written: it must be an object with
//! exactly the fields EventBridge sends (`version`, `id`, `detail-type`, `source`,
//! `account`, `time`, `region`, `resources`, `detail`), `detail-type` must be
//! `Scheduled Event` and `detail` an empty object. Anything else is refused with an error
//! naming the field, and nothing is evaluated, recorded or queued.

use crate::{CtBudget, CtError, Evaluation};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// `detail-type` of a scheduled event.
pub const SCHEDULED_DETAIL_TYPE: &str = "Scheduled Event";
/// `source` of an EventBridge rule's schedule and of EventBridge Scheduler.
pub const SCHEDULE_SOURCES: &[&str] = &["aws.events", "aws.scheduler"];

const FIELDS: &[&str] = &[
    "version",
    "id",
    "detail-type",
    "source",
    "account",
    "time",
    "region",
    "resources",
    "detail",
];

#[derive(Debug, thiserror::Error)]
pub enum ScheduledError {
    /// The event is not a scheduled event; nothing was done.
    #[error("not a scheduled event: {path}: {message}")]
    Shape { path: String, message: String },
    #[error(transparent)]
    Ct(#[from] CtError),
}

/// The accepted event's identity, for logs and the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub id: String,
    pub source: String,
    pub time: String,
    pub resources: Vec<String>,
}

/// What one scheduled invocation did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduledRun {
    pub event: Schedule,
    /// Repositories evaluated (those with a `prod` version).
    pub evaluated: usize,
    /// Evaluations by outcome (`hold`, `retrain`, `inconclusive`, `error`).
    pub outcomes: BTreeMap<String, usize>,
    /// Training jobs this invocation queued (not those already queued before).
    pub queued: Vec<String>,
}

fn shape(path: &str, message: impl Into<String>) -> ScheduledError {
    ScheduledError::Shape {
        path: path.to_string(),
        message: message.into(),
    }
}

/// Checks `event` (see the module's header).
pub fn parse(event: &Value) -> Result<Schedule, ScheduledError> {
    let Some(obj) = event.as_object() else {
        return Err(shape("$", "expected a JSON object"));
    };
    if let Some(extra) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(shape(
            &format!("$.{extra}"),
            "unexpected field (a scheduled event has exactly version, id, detail-type, source, account, time, region, resources, detail)",
        ));
    }
    let string = |key: &str| -> Result<String, ScheduledError> {
        match obj.get(key) {
            None => Err(shape(&format!("$.{key}"), "missing")),
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(v) => Err(shape(
                &format!("$.{key}"),
                format!("{v} is not a non-empty string"),
            )),
        }
    };
    for key in ["version", "account", "region"] {
        string(key)?;
    }
    let detail_type = string("detail-type")?;
    if detail_type != SCHEDULED_DETAIL_TYPE {
        return Err(shape(
            "$.detail-type",
            format!("{detail_type:?} is not {SCHEDULED_DETAIL_TYPE:?}"),
        ));
    }
    let source = string("source")?;
    if !SCHEDULE_SOURCES.contains(&source.as_str()) {
        return Err(shape(
            "$.source",
            format!("{source:?} is not a schedule's source (aws.events or aws.scheduler)"),
        ));
    }
    let time = string("time")?;
    if chrono::DateTime::parse_from_rfc3339(&time).is_err() {
        return Err(shape("$.time", format!("{time:?} is not an RFC 3339 time")));
    }
    let resources = match obj.get("resources") {
        None => return Err(shape("$.resources", "missing")),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| shape(&format!("$.resources[{i}]"), "expected a string"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(v) => return Err(shape("$.resources", format!("{v} is not an array"))),
    };
    match obj.get("detail") {
        None => return Err(shape("$.detail", "missing")),
        Some(Value::Object(d)) if d.is_empty() => {}
        Some(Value::Object(d)) => {
            let key = d.keys().next().map(String::as_str).unwrap_or_default();
            return Err(shape(
                &format!("$.detail.{key}"),
                "unexpected field (a scheduled event's detail is {})",
            ));
        }
        Some(v) => return Err(shape("$.detail", format!("{v} is not an object"))),
    }
    Ok(Schedule {
        id: string("id")?,
        source,
        time,
        resources,
    })
}

/// Summarises evaluations.
pub fn summarise(event: Schedule, evaluations: &[Evaluation]) -> ScheduledRun {
    let mut outcomes = BTreeMap::new();
    for e in evaluations {
        *outcomes
            .entry(e.budget.outcome.as_str().to_string())
            .or_insert(0) += 1;
    }
    ScheduledRun {
        event,
        evaluated: evaluations.len(),
        outcomes,
        queued: evaluations
            .iter()
            .filter(|e| e.job_status.as_deref() == Some(crate::JOB_QUEUED))
            .filter_map(|e| e.job.clone())
            .collect(),
    }
}

/// Checks `event`, then evaluates every repository with a `prod` version.
pub async fn run(ct: &CtBudget, event: &Value) -> Result<ScheduledRun, ScheduledError> {
    let schedule = parse(event)?;
    tracing::info!(event = %schedule.id, source = %schedule.source, "scheduled CT evaluation");
    let evaluations = ct.evaluate_all().await?;
    Ok(summarise(schedule, &evaluations))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn event() -> Value {
        serde_json::from_str(include_str!(
            "../../../events/aws/eventbridge-ct-budget-scheduled.json"
        ))
        .unwrap()
    }

    #[test]
    fn real_shaped_scheduled_events_are_accepted() {
        let s = parse(&event()).unwrap();
        assert_eq!(s.source, "aws.events");
        assert_eq!(s.resources.len(), 1);
        let scheduler: Value = serde_json::from_str(include_str!(
            "../../../events/aws/eventbridge-scheduled.json"
        ))
        .unwrap();
        assert_eq!(parse(&scheduler).unwrap().source, "aws.scheduler");
    }

    #[test]
    fn anything_else_is_refused_naming_the_field() {
        let bad: Value = serde_json::from_str(include_str!(
            "../../../events/aws/eventbridge-ct-budget-bad-shape.json"
        ))
        .unwrap();
        let e = parse(&bad).unwrap_err().to_string();
        assert!(e.contains("$.detail-type"), "{e}");
        let mut cases: Vec<(Value, &str)> = vec![
            (json!([1]), "$: expected a JSON object"),
            (json!("tick"), "$: expected a JSON object"),
        ];
        let with = |k: &str, v: Value| {
            let mut e = event();
            e[k] = v;
            e
        };
        let without = |k: &str| {
            let mut e = event();
            e.as_object_mut().unwrap().remove(k);
            e
        };
        cases.push((with("source", json!("aws.s3")), "$.source"));
        cases.push((
            with("detail-type", json!("Object Created")),
            "$.detail-type",
        ));
        cases.push((with("time", json!("yesterday")), "$.time"));
        cases.push((with("resources", json!("arn")), "$.resources"));
        cases.push((with("resources", json!([1])), "$.resources[0]"));
        cases.push((with("detail", json!({"repo": "x"})), "$.detail.repo"));
        cases.push((with("detail", json!([])), "$.detail"));
        cases.push((with("extra", json!(1)), "$.extra: unexpected field"));
        cases.push((with("id", json!("")), "$.id"));
        cases.push((without("account"), "$.account: missing"));
        cases.push((without("detail"), "$.detail: missing"));
        for (event, needle) in cases {
            let e = parse(&event).unwrap_err();
            assert!(matches!(e, ScheduledError::Shape { .. }));
            let e = e.to_string();
            assert!(e.contains(needle), "{needle}: {e}");
        }
    }
}
