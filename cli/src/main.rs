//! The `vaia` binary: argument parsing and exit codes only; the work is in the library.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use vaia::gate_cmd;

#[derive(Parser)]
#[command(
    name = "vaia",
    version,
    about = "Automated promotion pipeline for LLM agent services"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the local stack (webhook, API, metrics, every handler) until interrupted.
    Up {
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Address to listen on; keep 127.0.0.1 unless a proxy guards it.
        #[arg(long, default_value = "127.0.0.1")]
        bind: String,
        #[arg(long, default_value = ".vaia")]
        data_dir: PathBuf,
        /// Promotion policy (vaia.toml); defaults apply when absent.
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// Start a local stack, push two commits through it and show what happened.
    Demo {
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Where the demo keeps its data (default: a fresh temporary directory).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Exit after showing the runs instead of serving until interrupted.
        #[arg(long)]
        exit: bool,
    },
    /// Run a gate on files; prints the verdict as JSON; exit 0 pass, 1 fail, 2 bad input, 3 inconclusive or error.
    #[command(subcommand)]
    Gate(GateCommand),
    /// Inspect and act on runs of a running stack.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Upload an evidence bundle to a running stack.
    #[command(subcommand)]
    Evidence(EvidenceCommand),
}

#[derive(Subcommand)]
enum GateCommand {
    /// Tool-schema validity and breaking-change classification.
    Schema {
        /// Candidate tool definitions (OpenAI tools/functions, Gemini function_declarations, MCP tools/list).
        #[arg(long)]
        candidate: PathBuf,
        /// Production tool definitions to compare against.
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// Let a breaking change pass (as a major version bump).
        #[arg(long)]
        allow_major: bool,
        /// Read `[schema] allow_major` from this vaia.toml.
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// Prompt-injection robustness: run an attack corpus (or score a transcript) and detect leaks.
    Prompt {
        /// Attack corpus JSONL (`id`, `prompt`, `category`, `source`); default: the built-in corpus.
        #[arg(long)]
        corpus: Option<PathBuf>,
        /// An OpenAI-compatible chat completions URL to attack.
        #[arg(long, conflicts_with = "responses")]
        target: Option<String>,
        /// A transcript JSONL (`id`, `response`, optional `canary`) to score instead.
        #[arg(long)]
        responses: Option<PathBuf>,
        /// The system prompt that must not leak.
        #[arg(long)]
        system_prompt: Option<PathBuf>,
        /// A canary token that must not leak (repeatable).
        #[arg(long = "canary")]
        canaries: Vec<String>,
        /// Request body template (JSON with "{{prompt}}" and optionally "{{canary}}").
        #[arg(long)]
        template: Option<PathBuf>,
        /// JSON pointer of the reply text in the target's answer.
        #[arg(long)]
        reply_pointer: Option<String>,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        #[arg(long, default_value_t = 30)]
        timeout_secs: u64,
        #[arg(long, default_value_t = 2)]
        retries: u32,
        /// Leaks allowed (default: the policy's `[prompt] max_leaks`, 0).
        #[arg(long)]
        max_leaks: Option<u64>,
        /// Write the target's responses to this JSONL file (for an evidence bundle).
        #[arg(long)]
        save_responses: Option<PathBuf>,
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// Judged answer quality against production with a paired bootstrap interval.
    Eval {
        /// Golden set JSONL (`id`, `input`, `reference`, optional `category`).
        #[arg(long)]
        golden: PathBuf,
        /// Candidate answers JSONL (`id`, `answer`).
        #[arg(long)]
        candidate: PathBuf,
        /// Production answers JSONL (`id`, `answer`).
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// local | gemini (GEMINI_API_KEY) | openai (OPENAI_API_KEY).
        #[arg(long, default_value = "local")]
        judge: String,
        /// Base URL of the judge API (e.g. a proxy or a local server).
        #[arg(long)]
        judge_url: Option<String>,
        #[arg(long)]
        model: Option<String>,
        /// Fail when the candidate is more than this many points below production (default 2).
        #[arg(long)]
        threshold_pp: Option<f64>,
        #[arg(long, default_value_t = 10_000)]
        resamples: usize,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        #[arg(long, default_value_t = 3)]
        retries: u32,
        #[arg(long, default_value_t = 60)]
        timeout_secs: u64,
        /// Grade cache directory (default: $XDG_CACHE_HOME/vaia or ~/.cache/vaia).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
        #[arg(long)]
        no_cache: bool,
        #[arg(long)]
        policy: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum RunsCommand {
    /// Runs, newest first.
    List {
        #[arg(long, env = "VAIA_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// One run with its verdicts and event log.
    Show {
        id: String,
        #[arg(long, env = "VAIA_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        #[arg(long)]
        json: bool,
    },
    /// Approve promotion of a run waiting in CT_QUEUED.
    Approve {
        id: String,
        #[arg(long, env = "VAIA_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
    },
    /// Roll back a promoted run.
    Rollback {
        id: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long, env = "VAIA_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
    },
}

#[derive(Subcommand)]
enum EvidenceCommand {
    /// Upload every file of DIR, then a manifest listing them (the evidence contract).
    Upload {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        repo: String,
        #[arg(long)]
        commit: String,
        #[arg(long)]
        image_digest: String,
        #[arg(long, env = "VAIA_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Gate(GateCommand::Schema {
            candidate,
            baseline,
            allow_major,
            policy,
        }) => {
            match gate_cmd::schema(
                &candidate,
                baseline.as_deref(),
                allow_major,
                policy.as_deref(),
            ) {
                Ok((json, code)) => {
                    println!("{json}");
                    exit(code)
                }
                Err(e) => {
                    eprintln!("vaia gate schema: {e}");
                    exit(gate_cmd::EXIT_BAD_INPUT)
                }
            }
        }
        Command::Gate(GateCommand::Prompt {
            corpus,
            target,
            responses,
            system_prompt,
            canaries,
            template,
            reply_pointer,
            concurrency,
            timeout_secs,
            retries,
            max_leaks,
            save_responses,
            policy,
        }) => {
            let args = gate_cmd::PromptArgs {
                corpus,
                target,
                responses,
                system_prompt,
                canaries,
                template,
                reply_pointer,
                concurrency,
                timeout_secs,
                retries,
                max_leaks,
                policy,
                save_responses,
            };
            gate_async("prompt", gate_cmd::prompt(args))
        }
        Command::Gate(GateCommand::Eval {
            golden,
            candidate,
            baseline,
            judge,
            judge_url,
            model,
            threshold_pp,
            resamples,
            concurrency,
            retries,
            timeout_secs,
            cache_dir,
            no_cache,
            policy,
        }) => {
            let args = gate_cmd::EvalArgs {
                golden,
                candidate,
                baseline,
                judge,
                judge_url,
                model,
                threshold_pp,
                resamples,
                concurrency,
                retries,
                timeout_secs,
                cache_dir,
                no_cache,
                policy,
            };
            gate_async("eval", gate_cmd::eval(args))
        }
        other => {
            vaia::telemetry::init(if matches!(other, Command::Demo { .. }) {
                "warn"
            } else {
                "info"
            });
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("vaia: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(run(other)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("vaia: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Runs an async gate command: verdict on stdout, bad input on stderr with exit 2.
fn gate_async(
    name: &str,
    fut: impl std::future::Future<Output = Result<(String, i32), gate_cmd::GateInputError>>,
) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vaia gate {name}: cannot start the async runtime: {e}");
            return exit(3);
        }
    };
    match rt.block_on(fut) {
        Ok((json, code)) => {
            println!("{json}");
            exit(code)
        }
        Err(e) => {
            eprintln!("vaia gate {name}: {e}");
            exit(gate_cmd::EXIT_BAD_INPUT)
        }
    }
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

async fn run(command: Command) -> anyhow::Result<()> {
    use vaia::{cli_runs, demo, stack};
    match command {
        Command::Up {
            port,
            bind,
            data_dir,
            policy,
        } => {
            let policy = gate_cmd::load_policy(policy.as_deref())?;
            let secret = stack::webhook_secret_from_env()?;
            let config = stack::StackConfig {
                data_dir,
                bind,
                port,
                policy,
                secret,
            };
            stack::serve_until_interrupted(config).await
        }
        Command::Demo {
            port,
            data_dir,
            exit,
        } => demo::run(port, data_dir, exit).await,
        Command::Runs(RunsCommand::List { url, limit, json }) => {
            cli_runs::list(&url, limit, json).await
        }
        Command::Runs(RunsCommand::Show { id, url, json }) => cli_runs::show(&url, &id, json).await,
        Command::Runs(RunsCommand::Approve { id, url }) => {
            cli_runs::action(&url, &id, "approve", None).await
        }
        Command::Runs(RunsCommand::Rollback { id, reason, url }) => {
            cli_runs::action(&url, &id, "rollback", reason.as_deref()).await
        }
        Command::Evidence(EvidenceCommand::Upload {
            dir,
            repo,
            commit,
            image_digest,
            url,
        }) => cli_runs::upload(&url, &dir, &repo, &commit, &image_digest).await,
        Command::Gate(_) => Ok(()),
    }
}
