//! The time by which the work in hand must be done, as a Tokio task-local, so that what
//! follows a state change (commit statuses, promotion events, image tags) never outlasts
//! the invocation that made it.
//!
//! Who sets it:
//! - on AWS Lambda, the SQS batch adapter (`vaia_aws::lambda`) runs each invocation under
//!   the context's deadline less a safety margin, for the whole batch: a delivery still
//!   waiting then is abandoned, and the batch is answered before Lambda times it out;
//! - the delivery wrappers (`vaia_delivery`) narrow it per message to a budget
//!   (`VAIA_DELIVERY_BUDGET_SECS`), so one message cannot eat a whole invocation. Locally
//!   (`vaia up`) there is no invocation limit and no deadline is set by the router: the
//!   per-message budget alone bounds the deliveries, below the queue's visibility timeout.
//!
//! Retry loops ask [`allows`] before waiting to try again, and run each attempt with
//! [`run`]; with no deadline set, both let everything through. The deadline is a task-local:
//! it follows `.await`s, not `tokio::spawn`.

use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

tokio::task_local! {
    static DEADLINE: Instant;
}

/// The attempt could not finish before the deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the delivery deadline was reached")]
pub struct Expired;

/// Runs `fut` with `deadline` as the deadline (an earlier deadline already in force stays).
pub async fn scope<F: Future>(deadline: Instant, fut: F) -> F::Output {
    let deadline = current().map_or(deadline, |outer| outer.min(deadline));
    DEADLINE.scope(deadline, fut).await
}

/// Runs `fut` with a deadline `budget` from now (or the one in force, if earlier).
pub async fn scope_budget<F: Future>(budget: Duration, fut: F) -> F::Output {
    scope(Instant::now() + budget, fut).await
}

/// The deadline in force, if any.
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|d| *d).ok()
}

/// The time left before the deadline in force (zero once it passed); `None` with no deadline.
pub fn remaining() -> Option<Duration> {
    current().map(|d| d.saturating_duration_since(Instant::now()))
}

/// Whether waiting `wait` still leaves time for an attempt: true with no deadline.
pub fn allows(wait: Duration) -> bool {
    remaining().is_none_or(|left| wait < left)
}

/// Runs `fut` until the deadline in force; [`Expired`] when it is reached first (or was
/// already, in which case `fut` is not started).
pub async fn run<F: Future>(fut: F) -> Result<F::Output, Expired> {
    match current() {
        None => Ok(fut.await),
        Some(d) if d <= Instant::now() => Err(Expired),
        Some(d) => tokio::time::timeout_at(d, fut).await.map_err(|_| Expired),
    }
}

/// The [`Instant`] of a wall-clock deadline given in milliseconds since the Unix epoch (as
/// Lambda's context gives it), less `margin`, seen from `now_wall` and `now` (the same
/// moment on both clocks). A deadline already past is `now`.
pub fn from_epoch_millis(
    deadline_ms: u64,
    margin: Duration,
    now_wall: std::time::SystemTime,
    now: Instant,
) -> Instant {
    let now_ms = now_wall
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms)).saturating_sub(margin);
    now + left
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn attempts_stop_at_the_deadline() {
        assert_eq!(current(), None);
        assert!(allows(Duration::from_secs(3600)));
        assert_eq!(run(async { 7 }).await, Ok(7));
        let start = Instant::now();
        let limit = Duration::from_millis(300);
        scope(start + limit, async {
            let left = remaining().unwrap();
            assert!(
                left <= limit && left > Duration::from_millis(200),
                "{left:?}"
            );
            assert!(allows(Duration::from_millis(100)));
            assert!(!allows(limit));
            let hung = run(std::future::pending::<()>()).await;
            assert_eq!(hung, Err(Expired));
            let took = start.elapsed();
            assert!(took >= limit && took < Duration::from_secs(2), "{took:?}");
            assert_eq!(remaining(), Some(Duration::ZERO));
            // Past the deadline nothing starts, even what would finish at once.
            assert_eq!(run(async { 7 }).await, Err(Expired));
        })
        .await;
        assert_eq!(current(), None, "the deadline ends with its scope");
    }

    #[tokio::test]
    async fn an_inner_scope_narrows_but_never_extends() {
        let outer = Instant::now() + Duration::from_secs(10);
        scope(outer, async {
            scope_budget(Duration::from_secs(3), async {
                assert!(current().unwrap() < outer - Duration::from_secs(6));
            })
            .await;
            scope_budget(Duration::from_secs(60), async {
                assert_eq!(current(), Some(outer));
            })
            .await;
        })
        .await;
    }

    #[test]
    fn epoch_deadlines_become_instants_less_the_margin() {
        let wall = std::time::UNIX_EPOCH + Duration::from_millis(1_000_000);
        let now = Instant::now();
        let margin = Duration::from_secs(2);
        assert_eq!(
            from_epoch_millis(1_030_000, margin, wall, now),
            now + Duration::from_secs(28)
        );
        assert_eq!(from_epoch_millis(1_001_000, margin, wall, now), now);
        assert_eq!(from_epoch_millis(0, margin, wall, now), now);
    }
}
