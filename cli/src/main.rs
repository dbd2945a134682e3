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
