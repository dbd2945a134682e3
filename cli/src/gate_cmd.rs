//! `vaia gate <name>`: a gate run from files, with the verdict as JSON on stdout and the
//! exit code contract 0 pass, 1 fail, 2 bad input or usage, 3 inconclusive or error.

use std::path::Path;
use vaia_core::policy::Policy;
use vaia_gates::schema::{self, Input, SchemaOptions};

pub const EXIT_BAD_INPUT: i32 = 2;

/// A problem with the command's input: printed on stderr, exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum BadInput {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Policy(#[from] vaia_core::policy::PolicyError),
    #[error(transparent)]
    Schema(#[from] schema::InputError),
}

fn read(path: &Path) -> Result<Vec<u8>, BadInput> {
    std::fs::read(path).map_err(|source| BadInput::Read {
        path: path.display().to_string(),
        source,
    })
}

pub fn load_policy(path: Option<&Path>) -> Result<Policy, BadInput> {
    match path {
        None => Ok(Policy::default()),
        Some(p) => {
            let text = String::from_utf8_lossy(&read(p)?).into_owned();
            Ok(Policy::from_toml(&text, &p.display().to_string())?)
        }
    }
}

/// Runs the schema gate; returns the verdict JSON and the exit code.
pub fn schema(
    candidate: &Path,
    baseline: Option<&Path>,
    allow_major: bool,
    policy: Option<&Path>,
) -> Result<(String, i32), BadInput> {
    let policy = load_policy(policy)?;
    let cand_bytes = read(candidate)?;
    let base_bytes = baseline.map(read).transpose()?;
    let cand_origin = candidate.display().to_string();
    let base_origin = baseline
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let cand = Input {
        origin: &cand_origin,
        bytes: &cand_bytes,
    };
    let base = base_bytes.as_ref().map(|b| Input {
        origin: &base_origin,
        bytes: b,
    });
    let opts = SchemaOptions {
        allow_major: allow_major || policy.schema.allow_major,
    };
    let verdict = schema::evaluate(&cand, base.as_ref(), &opts)?;
    let json =
        serde_json::to_string_pretty(&verdict).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    Ok((json, verdict.outcome.exit_code()))
}
