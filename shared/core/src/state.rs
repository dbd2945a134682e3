//! The nine states of a run and the two gate stages.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PipelineState {
    Idle,
    Triggered,
    CiRunning,
    Build,
    StagingEval,
    CtQueued,
    Promoted,
    Failed,
    Rollback,
}

impl PipelineState {
    pub const ALL: [PipelineState; 9] = [
        Self::Idle,
        Self::Triggered,
        Self::CiRunning,
        Self::Build,
        Self::StagingEval,
        Self::CtQueued,
        Self::Promoted,
        Self::Failed,
        Self::Rollback,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "IDLE",
            Self::Triggered => "TRIGGERED",
            Self::CiRunning => "CI_RUNNING",
            Self::Build => "BUILD",
            Self::StagingEval => "STAGING_EVAL",
            Self::CtQueued => "CT_QUEUED",
            Self::Promoted => "PROMOTED",
            Self::Failed => "FAILED",
            Self::Rollback => "ROLLBACK",
        }
    }

    /// No transition leaves these states.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Failed | Self::Rollback)
    }

    /// A run in this state is still moving through the pipeline: it can fail or time out.
    pub fn is_in_flight(self) -> bool {
        !matches!(self, Self::Promoted | Self::Failed | Self::Rollback)
    }

    /// The gate stage a state runs, if any.
    pub fn stage(self) -> Option<Stage> {
        match self {
            Self::CiRunning => Some(Stage::Ci),
            Self::StagingEval => Some(Stage::Staging),
            _ => None,
        }
    }
}

impl fmt::Display for PipelineState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for PipelineState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown state {s:?}"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Ci,
    Staging,
}

impl Stage {
    pub fn state(self) -> PipelineState {
        match self {
            Stage::Ci => PipelineState::CiRunning,
            Stage::Staging => PipelineState::StagingEval,
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Ci => "ci",
            Stage::Staging => "staging",
        })
    }
}
