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
        /// API tokens: a TOML file of [[tokens]] (name, roles, sha256), added to VAIA_API_TOKENS.
        #[arg(long)]
        tokens: Option<PathBuf>,
        /// The built dashboard (default: VAIA_DASHBOARD_DIR, else dashboard/dist of the checkout).
        #[arg(long)]
        dashboard_dir: Option<PathBuf>,
        /// Seconds between scheduled CT budget evaluations (default: the policy's `[ct] schedule_minutes`, 15 minutes).
        #[arg(long, env = vaia::ct_loop::CT_EVERY_ENV, value_parser = clap::value_parser!(u64).range(1..))]
        ct_every_secs: Option<u64>,
        /// Poll DIR for raw data (DIR/OWNER/REPO/FILE), counted once per file as pending data volume.
        #[arg(long)]
        watch_data: Option<PathBuf>,
    },
    /// Start a local stack, push the demo's seven commits through it (releases that pass every gate, and a commit failing each gate: prompt, eval, schema, security, latency), roll a release back on an alert, queue a retrain on new data and drift, and show what happened.
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
    /// A repository's versions and their lineage, from a running stack's registry.
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// Collect an evidence bundle, pack it into one archive (bundle.tar), upload it to a running stack.
    #[command(subcommand)]
    Evidence(EvidenceCommand),
    /// DVC dataset files.
    #[command(subcommand)]
    Dataset(DatasetCommand),
    /// Continuous training; `budget` exits 0 hold, 1 retrain due, 2 bad input, 3 inconclusive or error.
    #[command(subcommand)]
    Ct(CtCommand),
    /// Raw data landed under raw/OWNER/REPO/ and counted by the data watcher.
    #[command(subcommand)]
    Data(DataCommand),
    /// Generate the monitoring bundle (Prometheus rules, Grafana dashboard) from `[monitoring]`.
    #[command(subcommand)]
    Monitoring(MonitoringCommand),
}

#[derive(Subcommand)]
enum MonitoringCommand {
    /// Prometheus rule files and their `promtool test rules` unit tests, into a directory.
    Rules {
        /// A vaia.toml whose `[monitoring]` section is the spec (default: the example agent).
        #[arg(long)]
        spec: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
    /// The Grafana dashboard JSON.
    Dashboard {
        /// A vaia.toml whose `[monitoring]` section is the spec (default: the example agent).
        #[arg(long)]
        spec: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum DatasetCommand {
    /// Read a `.dvc` file or a `dvc.lock` as vaia does; prints JSON (path, md5, size, nfiles, is_dir, rows; each stage's deps and outs).
    Inspect { file: PathBuf },
}

#[derive(Subcommand)]
enum DataCommand {
    /// OWNER/REPO's pending data volume (objects, bytes no retrain has consumed) from a running stack.
    Pending {
        repo: String,
        #[arg(long, env = "VAIA_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum CtCommand {
    /// The training budget from a drift score and the new rows: drift_weight·drift + data_weight·min(Δrows/rows_scale, 1).
    Budget {
        /// The drift monitor's score, in [0, 1].
        #[arg(long, allow_negative_numbers = true)]
        drift: f64,
        /// New rows since the CT baseline's snapshot (omit when unknown).
        #[arg(long, allow_negative_numbers = true)]
        delta_rows: Option<i64>,
        /// Seconds since the drift score was computed (stale past `[ct] max_drift_age`).
        #[arg(long)]
        drift_age_secs: Option<f64>,
        /// Read `[ct]` from this vaia.toml.
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// One scheduled CT evaluation of every repository in production, now, on a running stack (reconciliation of raw data first).
    Evaluate {
        #[arg(long, env = "VAIA_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        #[arg(long)]
        json: bool,
    },
    /// OWNER/REPO's CT budget evaluations from a running stack: the latest, then the recent ones.
    Show {
        repo: String,
        #[arg(long, env = "VAIA_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// How many recent evaluations (1 to 100).
        #[arg(long, default_value_t = 10)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
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
    /// Image vulnerabilities from Trivy's JSON report: fails on the given severities in layers the image adds.
    Security {
        /// `trivy image --format json` output of the candidate image.
        #[arg(long)]
        report: PathBuf,
        /// The base image's report: vulnerabilities in its layers (Metadata.DiffIDs) are listed, not failing.
        #[arg(long)]
        base_report: Option<PathBuf>,
        /// A `.trivyignore` or `.trivyignore.yaml` (repeatable); expired entries no longer ignore.
        #[arg(long)]
        ignore: Vec<PathBuf>,
        /// Skip vulnerabilities that have no fixed version.
        #[arg(long)]
        ignore_unfixed: bool,
        /// Severities that fail, e.g. CRITICAL,HIGH (default: the policy's, CRITICAL).
        #[arg(long, value_delimiter = ',')]
        severity: Vec<String>,
        /// Also write the vulnerabilities as SARIF 2.1.0 (GitHub code scanning) to this file.
        #[arg(long)]
        sarif: Option<PathBuf>,
        /// Read `[security]` from this vaia.toml.
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// p95 latency of a Locust run against production's from Prometheus (or a fixed baseline).
    #[command(group(clap::ArgGroup::new("baseline").required(true).args(["prometheus", "baseline_p95_ms"])))]
    Latency {
        /// Locust's `*_stats.csv` (or `*_stats_history.csv`).
        #[arg(long)]
        locust_stats: PathBuf,
        /// Prometheus server URL for the baseline (`/api/v1/query_range`).
        #[arg(long)]
        prometheus: Option<String>,
        /// PromQL giving production's p95 in seconds (default: the policy's).
        #[arg(long, requires = "prometheus")]
        query: Option<String>,
        /// The production window, a Prometheus duration such as 1h or 30m (default: 1h).
        #[arg(long, requires = "prometheus")]
        range: Option<String>,
        /// Seconds between the range's steps (default: about 120 steps).
        #[arg(long, requires = "prometheus")]
        step: Option<f64>,
        /// How the steps become one number: median (default), mean, max, last.
        #[arg(long, requires = "prometheus")]
        aggregate: Option<String>,
        /// A fixed baseline p95 in milliseconds instead of Prometheus.
        #[arg(long, conflicts_with = "prometheus")]
        baseline_p95_ms: Option<f64>,
        /// Fail when candidate p95 > baseline × (1 + this); default 0.15.
        #[arg(long)]
        max_regression: Option<f64>,
        /// Fewer requests is inconclusive; default 100.
        #[arg(long)]
        min_requests: Option<u64>,
        /// A larger share of failed requests is inconclusive; default 0.05.
        #[arg(long)]
        max_failure_ratio: Option<f64>,
        /// Judge these Locust rows (`Name` or `Type Name`, repeatable) instead of Aggregated.
        #[arg(long)]
        endpoint: Vec<String>,
        /// Read `[latency]` from this vaia.toml.
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
        /// Runs per page (1-500).
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Start after this cursor: the `next` a previous page printed.
        #[arg(long, conflicts_with = "all")]
        after: Option<String>,
        /// Every run, following the cursor page after page.
        #[arg(long)]
        all: bool,
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
    /// Run again the gate whose error or inconclusive verdict failed a run (a judge or a
    /// registry that was down); a failing verdict is a finding and is not retried.
    Retry {
        id: String,
        /// The gate to run again (the one `vaia runs show` names in the failure).
        #[arg(long)]
        gate: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long, env = "VAIA_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
    },
}

#[derive(Subcommand)]
enum RegistryCommand {
    /// Every version of OWNER/REPO, newest first, with its aliases and gate outcomes.
    List {
        repo: String,
        #[arg(long, env = "VAIA_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        #[arg(long)]
        json: bool,
    },
    /// One version's lineage: run, commit, image, parent, dataset, every gate's metrics.
    Show {
        repo: String,
        version: String,
        #[arg(long, env = "VAIA_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum EvidenceCommand {
    /// Question a running candidate (attack corpus, golden set) and write an evidence bundle
    /// with its manifest; exit 0 written, 2 bad input, 3 the candidate could not be questioned.
    Collect(Box<vaia::collect::CollectArgs>),
    /// Pack DIR (its manifest.json and exactly the files it lists) into one archive,
    /// bundle.tar, for a bucket upload (`aws s3 cp OUT s3://BUCKET/evidence/OWNER/REPO/SHA/bundle.tar`).
    Pack {
        #[arg(long)]
        dir: PathBuf,
        /// Where to write the archive [default: bundle.tar beside DIR, in DIR's parent].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Upload DIR as one archive in one request (PUT .../bundle.tar): its manifest.json
    /// (the one `collect` wrote, or one made from the flags) and the files it lists.
    /// At most 64 MiB through the API (413 over it); a larger bundle goes to the bucket.
    Upload {
        #[arg(long)]
        dir: PathBuf,
        /// owner/name (required when DIR has no manifest.json; must agree with it otherwise).
        #[arg(long)]
        repo: Option<String>,
        #[arg(long)]
        commit: Option<String>,
        #[arg(long)]
        image_digest: Option<String>,
        #[arg(long, env = "VAIA_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// An API token with the upload role, sent as a bearer token (never printed).
        #[arg(long, env = "VAIA_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
}

fn main() -> ExitCode {
    vaia_gates::http::install_tls_provider();
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
        Command::Gate(GateCommand::Security {
            report,
            base_report,
            ignore,
            ignore_unfixed,
            severity,
            sarif,
            policy,
        }) => gate_result(
            "security",
            gate_cmd::security(&gate_cmd::SecurityArgs {
                report,
                base_report,
                ignore,
                ignore_unfixed,
                severity,
                sarif,
                policy,
            }),
        ),
        Command::Gate(GateCommand::Latency {
            locust_stats,
            prometheus,
            query,
            range,
            step,
            aggregate,
            baseline_p95_ms,
            max_regression,
            min_requests,
            max_failure_ratio,
            endpoint,
            policy,
        }) => {
            let args = gate_cmd::LatencyArgs {
                locust_stats,
                prometheus,
                query,
                range,
                step,
                aggregate,
                baseline_p95_ms,
                max_regression,
                min_requests,
                max_failure_ratio,
                endpoints: endpoint,
                policy,
            };
            gate_async("latency", gate_cmd::latency(&args))
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
        Command::Evidence(EvidenceCommand::Collect(args)) => collect_command(&args),
        Command::Dataset(DatasetCommand::Inspect { file }) => match vaia::ct_cmd::inspect(&file) {
            Ok(json) => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json).unwrap_or_default()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("vaia dataset inspect: {e}");
                exit(gate_cmd::EXIT_BAD_INPUT)
            }
        },
        Command::Ct(CtCommand::Budget {
            drift,
            delta_rows,
            drift_age_secs,
            policy,
        }) => match vaia::ct_cmd::budget(drift, drift_age_secs, delta_rows, policy.as_deref()) {
            Ok((json, code)) => {
                println!("{json}");
                exit(code)
            }
            Err(e) => {
                eprintln!("vaia ct budget: {e}");
                exit(gate_cmd::EXIT_BAD_INPUT)
            }
        },
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

fn gate_result<E: std::fmt::Display>(name: &str, result: Result<(String, i32), E>) -> ExitCode {
    match result {
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

/// Runs an async gate command: verdict on stdout, bad input on stderr with exit 2.
fn gate_async<E: std::fmt::Display>(
    name: &str,
    fut: impl std::future::Future<Output = Result<(String, i32), E>>,
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
    gate_result(name, rt.block_on(fut))
}

/// `vaia evidence collect`: the summary on stdout, errors on stderr with their exit code.
fn collect_command(args: &vaia::collect::CollectArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vaia evidence collect: cannot start the async runtime: {e}");
            return exit(vaia::collect::EXIT_ERROR);
        }
    };
    match rt.block_on(vaia::collect::run(args)) {
        Ok((json, code)) => {
            println!("{json}");
            exit(code)
        }
        Err(e) => {
            eprintln!("vaia evidence collect: {e}");
            exit(e.exit_code())
        }
    }
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

async fn run(command: Command) -> anyhow::Result<()> {
    use vaia::{cli_registry, cli_runs, demo, stack};
    match command {
        Command::Up {
            port,
            bind,
            data_dir,
            policy,
            tokens,
            dashboard_dir,
            ct_every_secs,
            watch_data,
        } => {
            let policy = gate_cmd::load_policy(policy.as_deref())?;
            let secret = stack::webhook_secret_from_env()?;
            let alertmanager_token = stack::alertmanager_token_from_env()?;
            let config = stack::StackConfig {
                data_dir,
                bind,
                port,
                policy,
                secret,
                alertmanager_token,
            };
            let options = stack::StackOptions {
                tokens: std::sync::Arc::new(stack::load_tokens(tokens.as_deref())?),
                dashboard_dir,
                ct_every: ct_every_secs.map(std::time::Duration::from_secs),
                watch_data,
            };
            stack::serve_with_options(config, options).await
        }
        Command::Demo {
            port,
            data_dir,
            exit,
        } => demo::run(port, data_dir, exit).await,
        Command::Runs(RunsCommand::List {
            url,
            limit,
            after,
            all,
            json,
        }) => {
            let pages = if all {
                cli_runs::Pages::All
            } else {
                cli_runs::Pages::One { after }
            };
            cli_runs::list(&url, limit, pages, json).await
        }
        Command::Runs(RunsCommand::Show { id, url, json }) => cli_runs::show(&url, &id, json).await,
        Command::Registry(RegistryCommand::List { repo, url, json }) => {
            cli_registry::list(&url, &repo, json).await
        }
        Command::Registry(RegistryCommand::Show {
            repo,
            version,
            url,
            json,
        }) => cli_registry::show(&url, &repo, &version, json).await,
        Command::Data(DataCommand::Pending { repo, url, json }) => {
            vaia::ct_cmd::pending(&url, &repo, json).await
        }
        Command::Ct(CtCommand::Evaluate { url, json }) => vaia::ct_cmd::evaluate(&url, json).await,
        Command::Ct(CtCommand::Show {
            repo,
            url,
            limit,
            json,
        }) => vaia::ct_cmd::show(&url, &repo, limit, json).await,
        Command::Runs(RunsCommand::Approve { id, url }) => {
            cli_runs::action(&url, &id, "approve", None, None).await
        }
        Command::Runs(RunsCommand::Rollback { id, reason, url }) => {
            cli_runs::action(&url, &id, "rollback", reason.as_deref(), None).await
        }
        Command::Runs(RunsCommand::Retry {
            id,
            gate,
            reason,
            url,
        }) => cli_runs::action(&url, &id, "retry", reason.as_deref(), Some(&gate)).await,
        Command::Evidence(EvidenceCommand::Upload {
            dir,
            repo,
            commit,
            image_digest,
            url,
            token,
        }) => {
            cli_runs::upload(
                &url,
                token,
                &dir,
                repo.as_deref(),
                commit.as_deref(),
                image_digest.as_deref(),
            )
            .await
        }
        Command::Evidence(EvidenceCommand::Pack { dir, out }) => {
            cli_runs::pack_command(&dir, out.as_deref())
        }
        Command::Evidence(EvidenceCommand::Collect(_)) => Ok(()),
        Command::Monitoring(MonitoringCommand::Rules { spec, out }) => {
            let spec = vaia::monitoring::load_spec(spec.as_deref())?;
            for path in vaia::monitoring::write_rules(&spec, &out)? {
                println!("wrote {}", path.display());
            }
            Ok(())
        }
        Command::Monitoring(MonitoringCommand::Dashboard { spec, out }) => {
            let spec = vaia::monitoring::load_spec(spec.as_deref())?;
            vaia::monitoring::write_dashboard(&spec, &out)?;
            println!("wrote {}", out.display());
            Ok(())
        }
        Command::Gate(_) | Command::Dataset(_) | Command::Ct(_) => Ok(()),
    }
}
