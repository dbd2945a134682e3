//! vaia's domain: runs, the state machine, verdicts, policy, evidence and the ports that
//! adapters implement. Nothing here knows about AWS, HTTP or databases.

pub mod contract;
pub mod ct;
pub mod dataset;
pub mod deadline;
pub mod delivery;
pub mod evidence;
pub mod gate_job;
pub mod ids;
pub mod layout;
pub mod machine;
pub mod memory;
pub mod messages;
pub mod monitoring;
pub mod policy;
pub mod ports;
pub mod run;
pub mod state;
pub mod verdict;
pub mod version;

pub use ids::{
    BlobKey, CommitSha, DeliveryId, GateName, IdError, ImageDigest, ImageName, ImageTag,
    Repository, RunId,
};
pub use state::{PipelineState, Stage};
pub use verdict::{Finding, Outcome, Severity, Verdict};
