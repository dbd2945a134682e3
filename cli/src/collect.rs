//! `vaia evidence collect`: produces an evidence bundle from a running candidate, so that no
//! agent repository's CI (and not the demo either) re-implements it. It runs the attack
//! corpus against the candidate's chat URL with a fresh canary (`prompt_responses.jsonl`),
//! asks the golden set's questions (`eval_golden.jsonl`, `eval_answers.jsonl`), copies the
//! files it is given under their contract names (tool definitions, Trivy reports, Locust
//! CSV, system prompt, `.trivyignore`), reads the dataset snapshot from a `.dvc` file, and
//! writes the directory with its `manifest.json` (sha256, sizes, image and base digests).
//!
//! Reproducible: two collections against the same candidate give the same bytes apart from
//! the canary (in the transcript, and in any reply that leaks it) and the manifest's
//! `created_at`. Exit codes as the gates: 0 written, 2 bad input (nothing written), 3 the
//! candidate could not be questioned (nothing written).

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use vaia_core::evidence::{
    DatasetSnapshot, ImageRef, Manifest, ManifestFile, MANIFEST_FILE, MANIFEST_SCHEMA_V1,
};
use vaia_core::{CommitSha, ImageDigest, Repository};
use vaia_gates::prompt::{self, target, Attack};

use crate::gate_cmd::EXIT_BAD_INPUT;

/// Exit code when the candidate could not be questioned (the gates' "error").
pub const EXIT_ERROR: i32 = 3;

/// A bundle file: its contract name and bytes.
pub type BundleFile = (String, Vec<u8>);

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("{what}: {message}")]
    BadInput { what: String, message: String },
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("the candidate at {url}: {message}")]
    Candidate { url: String, message: String },
}

impl CollectError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CollectError::BadInput { .. } | CollectError::Read { .. } => EXIT_BAD_INPUT,
            CollectError::Write { .. } | CollectError::Candidate { .. } => EXIT_ERROR,
        }
    }

    fn bad(what: impl Into<String>, message: impl std::fmt::Display) -> Self {
        CollectError::BadInput {
            what: what.into(),
            message: message.to_string(),
        }
    }
}

/// What to question the candidate with.
pub struct Questions {
    pub target: target::TargetConfig,
    pub corpus: Vec<Attack>,
    /// The golden set's JSONL text (copied as `eval_golden.jsonl`), when the eval gate runs.
    pub golden: Option<String>,
}

impl Questions {
    /// vaia's built-in attack corpus and `golden` against an OpenAI-compatible chat URL.
    pub fn builtin(chat_url: &str, golden: Option<String>) -> Result<Self, CollectError> {
        Ok(Self {
            target: target::TargetConfig::chat_completions(chat_url),
            corpus: prompt::parse_corpus("builtin corpus", prompt::BUILTIN_CORPUS)
                .map_err(|e| CollectError::bad("builtin corpus", e))?,
            golden,
        })
    }
}

/// A transcript of the prompt gate (`prompt_responses.jsonl`): one line per attack, in
/// corpus order, with the fresh canary passed and the error of a failed request.
pub fn transcript_jsonl(responses: &[prompt::Response]) -> String {
    let mut out = String::new();
    for r in responses {
        let line = serde_json::json!({"id": r.id, "response": r.response, "canary": r.canary, "error": r.error});
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

/// What questioning the candidate produced.
pub struct Answers {
    pub files: Vec<BundleFile>,
    pub attacks: usize,
    pub attack_errors: usize,
    pub golden: usize,
}

/// Runs the corpus and the golden questions against the candidate. An attack whose request
/// failed stays in the transcript with its error (the prompt gate judges it); every attack
/// failing, or any golden question failing, is an error: the bundle would say nothing.
pub async fn question(q: &Questions) -> Result<Answers, CollectError> {
    let url = q.target.url.clone();
    let candidate = |message: String| CollectError::Candidate {
        url: url.clone(),
        message,
    };
    let responses = target::run(&q.target, &q.corpus)
        .await
        .map_err(|e| CollectError::bad("--target", e))?;
    let attack_errors = responses.iter().filter(|r| r.error.is_some()).count();
    if !responses.is_empty() && attack_errors == responses.len() {
        let first = responses
            .iter()
            .find_map(|r| r.error.clone())
            .unwrap_or_default();
        return Err(candidate(format!(
            "every one of the {} attacks failed (first: {first})",
            responses.len()
        )));
    }
    let mut files = vec![(
        vaia_gate_prompt::RESPONSES_FILE.to_string(),
        transcript_jsonl(&responses).into_bytes(),
    )];
    let mut golden_count = 0;
    if let Some(golden_text) = &q.golden {
        let golden = vaia_gates::eval::parse_golden(vaia_gate_eval::GOLDEN_FILE, golden_text)
            .map_err(|e| CollectError::bad("--golden", e))?;
        golden_count = golden.len();
        // The golden questions go through the same template, headers and retries as the
        // attacks, in the golden set's order.
        let asks: Vec<Attack> = golden
            .iter()
            .map(|g| Attack {
                id: g.id.clone(),
                prompt: g.input.clone(),
                category: "golden".into(),
                source: "golden set".into(),
            })
            .collect();
        let replies = target::run(&q.target, &asks)
            .await
            .map_err(|e| CollectError::bad("--target", e))?;
        let mut answers = String::new();
        for r in replies {
            if let Some(error) = r.error {
                return Err(candidate(format!("golden question {}: {error}", r.id)));
            }
            let line = vaia_gates::eval::Answer {
                id: r.id,
                answer: r.response,
            };
            let line = serde_json::to_string(&line).map_err(|e| candidate(e.to_string()))?;
            answers.push_str(&line);
            answers.push('\n');
        }
        files.push((
            vaia_gate_eval::GOLDEN_FILE.to_string(),
            golden_text.clone().into_bytes(),
        ));
        files.push((
            vaia_gate_eval::ANSWERS_FILE.to_string(),
            answers.into_bytes(),
        ));
    }
    Ok(Answers {
        files,
        attacks: responses.len(),
        attack_errors,
        golden: golden_count,
    })
}

/// The manifest of `files` (listed by name, sorted), as the evidence contract defines it.
pub fn manifest_for(
    repo: &Repository,
    commit: &CommitSha,
    image: ImageRef,
    dataset: Option<DatasetSnapshot>,
    files: &[BundleFile],
    created_at: chrono::DateTime<chrono::Utc>,
) -> Manifest {
    let mut listed: Vec<ManifestFile> = files
        .iter()
        .map(|(name, bytes)| ManifestFile {
            name: name.clone(),
            sha256: hex::encode(Sha256::digest(bytes)),
            bytes: bytes.len() as u64,
        })
        .collect();
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    Manifest {
        schema: MANIFEST_SCHEMA_V1.into(),
        repository: repo.clone(),
        commit: commit.clone(),
        image,
        dataset,
        files: listed,
        created_at,
    }
}

/// The dataset snapshot the DVC pointer file (`*.dvc`) `file` records: its path in the
/// repository ([`path_in_repo`], as the manifest names it: `data/train.dvc`), its single
/// `outs` entry's `md5`, and `meta.rows` when declared (absent: unknown). The registry and
/// the CT budget find the data's later snapshots, pushed under `datasets/<owner>/<repo>/`,
/// by this path without `.dvc`. Errors name `file` as given.
pub fn dvc_snapshot(file: &Path, text: &str) -> Result<DatasetSnapshot, CollectError> {
    let origin = &file.display().to_string();
    // Read as the registry reads it (vaia-dvc): both `.dvc` forms, `meta.rows`, errors
    // with line and field.
    let bad = |e: vaia_dvc::DvcError| CollectError::bad(origin, e);
    let dvc = vaia_dvc::DvcFile::parse(text, origin).map_err(bad)?;
    let out = dvc.single_out(origin).map_err(bad)?;
    let md5 = out
        .md5
        .clone()
        .ok_or_else(|| CollectError::bad(origin, "outs[0].md5: missing"))?;
    Ok(DatasetSnapshot {
        path: path_in_repo(file),
        md5,
        rows: dvc.rows,
    })
}

/// `file`'s path in the repository, `/`-separated: as given when relative (the agent's CI
/// runs `vaia evidence collect` at the repository root), relative to the working directory
/// when absolute and inside it, else its file name.
pub fn path_in_repo(file: &Path) -> String {
    let relative = if file.is_absolute() {
        std::env::current_dir()
            .ok()
            .and_then(|cwd| file.strip_prefix(cwd).ok().map(Path::to_path_buf))
            .unwrap_or_else(|| file.file_name().map(PathBuf::from).unwrap_or_default())
    } else {
        file.to_path_buf()
    };
    relative
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Everything a bundle is made of, already read.
pub struct CollectRequest {
    pub repo: Repository,
    pub commit: CommitSha,
    pub image: ImageRef,
    pub dataset: Option<DatasetSnapshot>,
    /// Files copied into the bundle as they are.
    pub copies: Vec<BundleFile>,
    pub questions: Questions,
}

/// A collected bundle: its files and manifest.
pub struct Bundle {
    pub files: Vec<BundleFile>,
    pub manifest: Manifest,
    pub attacks: usize,
    pub attack_errors: usize,
    pub golden: usize,
}

/// Questions the candidate and assembles the bundle (nothing is written).
pub async fn collect(req: CollectRequest) -> Result<Bundle, CollectError> {
    let answers = question(&req.questions).await?;
    let mut files = req.copies;
    for (name, bytes) in answers.files {
        if files.iter().any(|(n, _)| *n == name) {
            return Err(CollectError::bad(
                name.as_str(),
                "given as a file, but collect writes it from the candidate's answers",
            ));
        }
        files.push((name, bytes));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let manifest = manifest_for(
        &req.repo,
        &req.commit,
        req.image,
        req.dataset,
        &files,
        chrono::Utc::now(),
    );
    Ok(Bundle {
        files,
        manifest,
        attacks: answers.attacks,
        attack_errors: answers.attack_errors,
        golden: answers.golden,
    })
}

impl Bundle {
    /// Writes the files, then `manifest.json`, into `dir` (created if absent; it must not
    /// hold other files, which an upload would send along).
    pub fn write(&self, dir: &Path) -> Result<(), CollectError> {
        check_out_dir(dir)?;
        let write_err = |path: &Path, source| CollectError::Write {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|e| write_err(dir, e))?;
        for (name, bytes) in &self.files {
            let path = dir.join(name);
            std::fs::write(&path, bytes).map_err(|e| write_err(&path, e))?;
        }
        let path = dir.join(MANIFEST_FILE);
        let mut json = serde_json::to_vec_pretty(&self.manifest)
            .map_err(|e| write_err(&path, std::io::Error::other(e)))?;
        json.push(b'\n');
        std::fs::write(&path, json).map_err(|e| write_err(&path, e))
    }

    /// The JSON summary `vaia evidence collect` prints.
    pub fn summary(&self, dir: &Path) -> serde_json::Value {
        serde_json::json!({
            "dir": dir.display().to_string(),
            "repository": self.manifest.repository,
            "commit": self.manifest.commit,
            "image": self.manifest.image,
            "files": self.manifest.files,
            "attacks": self.attacks,
            "attack_errors": self.attack_errors,
            "golden_questions": self.golden,
        })
    }
}

fn check_out_dir(dir: &Path) -> Result<(), CollectError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if let Some(Ok(entry)) = entries.next() {
                return Err(CollectError::bad(
                    format!("--out {}", dir.display()),
                    format!(
                        "the directory is not empty ({} is there): an upload sends every file of it",
                        entry.file_name().to_string_lossy()
                    ),
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(CollectError::Read {
            path: dir.display().to_string(),
            source,
        }),
    }
}

/// The command's arguments, as given on the command line.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct CollectArgs {
    /// The candidate's OpenAI-compatible chat completions URL.
    #[arg(long)]
    pub target: String,
    /// The bundle's directory (created; must be empty).
    #[arg(long)]
    pub out: PathBuf,
    /// owner/name of the agent's repository.
    #[arg(long)]
    pub repo: String,
    /// The commit the candidate was built from.
    #[arg(long)]
    pub commit: String,
    /// The candidate image's digest (sha256:...).
    #[arg(long)]
    pub image_digest: String,
    /// The base image's digest.
    #[arg(long)]
    pub base_digest: Option<String>,
    /// Attack corpus JSONL (default: the built-in corpus).
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Golden set JSONL (`id`, `input`, `reference`): asked, and copied as eval_golden.jsonl.
    #[arg(long)]
    pub golden: Option<PathBuf>,
    /// Tool definitions, copied as tools.json.
    #[arg(long)]
    pub tools: Option<PathBuf>,
    /// The system prompt, copied as system_prompt.txt.
    #[arg(long)]
    pub system_prompt: Option<PathBuf>,
    /// `trivy image --format json` of the candidate, copied as trivy.json.
    #[arg(long)]
    pub trivy: Option<PathBuf>,
    /// Trivy's report of the base image, copied as trivy-base.json.
    #[arg(long)]
    pub trivy_base: Option<PathBuf>,
    /// A .trivyignore or .trivyignore.yaml, copied under its name.
    #[arg(long)]
    pub trivyignore: Option<PathBuf>,
    /// Locust's stats CSV, copied as locust_stats.csv.
    #[arg(long)]
    pub locust_stats: Option<PathBuf>,
    /// The training data's DVC pointer file: its path and md5 go into the manifest.
    #[arg(long)]
    pub dvc: Option<PathBuf>,
    /// Request body template (JSON with "{{prompt}}" and optionally "{{canary}}").
    #[arg(long)]
    pub template: Option<PathBuf>,
    /// JSON pointer of the reply text in the candidate's answer.
    #[arg(long)]
    pub reply_pointer: Option<String>,
    /// Requests in flight at once (default 8).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Timeout of one request (default 30).
    #[arg(long)]
    pub timeout_secs: Option<u64>,
    /// Retries of a failed request (default 2).
    #[arg(long)]
    pub retries: Option<u32>,
}

fn read(path: &Path) -> Result<Vec<u8>, CollectError> {
    std::fs::read(path).map_err(|source| CollectError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn read_text(path: &Path) -> Result<String, CollectError> {
    String::from_utf8(read(path)?)
        .map_err(|_| CollectError::bad(path.display().to_string(), "not UTF-8 text"))
}

/// Reads and checks every input (nothing is written, nothing is asked, on bad input).
pub fn request(args: &CollectArgs) -> Result<CollectRequest, CollectError> {
    let repo = Repository::new(&args.repo).map_err(|e| CollectError::bad("--repo", e))?;
    let commit = CommitSha::new(&args.commit).map_err(|e| CollectError::bad("--commit", e))?;
    let digest =
        ImageDigest::new(&args.image_digest).map_err(|e| CollectError::bad("--image-digest", e))?;
    let base_digest = args
        .base_digest
        .as_deref()
        .map(ImageDigest::new)
        .transpose()
        .map_err(|e| CollectError::bad("--base-digest", e))?;
    check_out_dir(&args.out)?;
    let corpus = match &args.corpus {
        Some(p) => prompt::parse_corpus(&p.display().to_string(), &read_text(p)?)
            .map_err(|e| CollectError::bad("--corpus", e))?,
        None => prompt::parse_corpus("builtin corpus", prompt::BUILTIN_CORPUS)
            .map_err(|e| CollectError::bad("builtin corpus", e))?,
    };
    let golden = match &args.golden {
        Some(p) => {
            let text = read_text(p)?;
            vaia_gates::eval::parse_golden(&p.display().to_string(), &text)
                .map_err(|e| CollectError::bad("--golden", e))?;
            Some(text)
        }
        None => None,
    };
    let mut config = target::TargetConfig::chat_completions(args.target.clone());
    if let Some(p) = &args.template {
        config.template = serde_json::from_str(&read_text(p)?)
            .map_err(|e| CollectError::bad(p.display().to_string(), e))?;
    }
    if let Some(p) = &args.reply_pointer {
        config.reply_pointer = p.clone();
    }
    if let Some(c) = args.concurrency {
        config.concurrency = c.max(1);
    }
    if let Some(t) = args.timeout_secs {
        config.timeout = std::time::Duration::from_secs(t);
    }
    if let Some(r) = args.retries {
        config.retries = r;
    }
    if !(config.url.starts_with("http://") || config.url.starts_with("https://")) {
        return Err(CollectError::bad(
            "--target",
            format!("{:?} is not an http(s) URL", config.url),
        ));
    }
    let ignore_name = |p: &Path| -> Result<String, CollectError> {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if vaia_gate_security::IGNORE_FILES.contains(&name.as_str()) {
            Ok(name)
        } else {
            Err(CollectError::bad(
                format!("--trivyignore {}", p.display()),
                format!(
                    "the file must be named one of {:?}",
                    vaia_gate_security::IGNORE_FILES
                ),
            ))
        }
    };
    let mut copies = Vec::new();
    let named: [(&Option<PathBuf>, &str); 5] = [
        (&args.tools, vaia_gate_schema::TOOLS_FILE),
        (&args.system_prompt, vaia_gate_prompt::SYSTEM_PROMPT_FILE),
        (&args.trivy, vaia_gate_security::REPORT_FILE),
        (&args.trivy_base, vaia_gate_security::BASE_REPORT_FILE),
        (&args.locust_stats, vaia_gate_latency::STATS_FILE),
    ];
    for (path, name) in named {
        if let Some(p) = path {
            copies.push((name.to_string(), read(p)?));
        }
    }
    if let Some(p) = &args.trivyignore {
        copies.push((ignore_name(p)?, read(p)?));
    }
    let dataset = match &args.dvc {
        Some(p) => Some(dvc_snapshot(p, &read_text(p)?)?),
        None => None,
    };
    Ok(CollectRequest {
        repo,
        commit,
        image: ImageRef {
            digest,
            base_digest,
        },
        dataset,
        copies,
        questions: Questions {
            target: config,
            corpus,
            golden,
        },
    })
}

/// `vaia evidence collect`: the summary JSON and the exit code.
pub async fn run(args: &CollectArgs) -> Result<(String, i32), CollectError> {
    let req = request(args)?;
    let bundle = collect(req).await?;
    bundle.write(&args.out)?;
    Ok((bundle.summary(&args.out).to_string(), 0))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn dvc_files_give_the_snapshot_or_say_what_is_wrong() {
        let ok = "outs:\n- md5: a304afb96060aad90176268345e10355\n  size: 120\n  hash: md5\n  path: data.csv\n";
        let s = dvc_snapshot(Path::new("data/data.csv.dvc"), ok).unwrap();
        assert_eq!(
            s.path, "data/data.csv.dvc",
            "the manifest names the .dvc file"
        );
        assert_eq!(s.md5, "a304afb96060aad90176268345e10355");
        assert_eq!(s.rows, None, "no meta.rows: unknown, not zero");
        let with_rows = format!("{ok}meta:\n  rows: 120000\n");
        assert_eq!(
            dvc_snapshot(Path::new("data.csv.dvc"), &with_rows)
                .unwrap()
                .rows,
            Some(120_000)
        );
        for bad in ["outs:\n- path: data.csv\n", "outs: []\n", "{{{"] {
            let e = dvc_snapshot(Path::new("d.dvc"), bad).unwrap_err();
            assert!(e.to_string().contains("d.dvc"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn dvc_files_are_named_by_their_path_in_the_repository() {
        assert_eq!(
            path_in_repo(Path::new("./data/train.dvc")),
            "data/train.dvc"
        );
        assert_eq!(path_in_repo(Path::new("data/train.dvc")), "data/train.dvc");
        let inside = std::env::current_dir().unwrap().join("data/train.dvc");
        assert_eq!(path_in_repo(&inside), "data/train.dvc");
        assert_eq!(
            path_in_repo(Path::new("/elsewhere/x/train.dvc")),
            "train.dvc"
        );
    }

    #[test]
    fn manifests_list_files_sorted_with_their_hashes() {
        let repo = Repository::new("octo/agent").unwrap();
        let commit = CommitSha::new("ab".repeat(20)).unwrap();
        let image = ImageRef {
            digest: ImageDigest::new(format!("sha256:{}", "cd".repeat(32))).unwrap(),
            base_digest: None,
        };
        let files = vec![
            ("z.txt".to_string(), b"z".to_vec()),
            ("a.txt".to_string(), b"".to_vec()),
        ];
        let m = manifest_for(&repo, &commit, image, None, &files, chrono::Utc::now());
        assert_eq!(m.files[0].name, "a.txt");
        assert_eq!(
            m.files[0].sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(m.files[1].bytes, 1);
    }
}
