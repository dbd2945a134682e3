//! `vaia-example-agent --variant good|leaky|leaky-base64|regressed|slow [--port 0]`: serves the example
//! agent and prints `vaia-example-agent listening on http://ADDR` on stdout and stderr once
//! it accepts connections (with `--port 0`, ADDR has the port the system picked).
//! `--print-system-prompt` and `--print-tools` print what an agent repository keeps beside its
//! code (the system prompt with `--canary` in it, the OpenAI tool definitions) and exit: what
//! a CI hands to `vaia evidence collect`.

use clap::Parser;
use std::io::Write;
use std::time::Duration;
use vaia_example_agent::{spawn, AgentConfig, Variant, DEFAULT_CANARY};

#[derive(Parser)]
#[command(
    name = "vaia-example-agent",
    about = "A small deterministic agent service"
)]
struct Args {
    #[arg(long, value_enum, default_value = "good")]
    variant: Variant,
    #[arg(long, default_value_t = 8000)]
    port: u16,
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    /// The canary in the system prompt (a request's x-vaia-canary header overrides it).
    #[arg(long, default_value = DEFAULT_CANARY)]
    canary: String,
    /// Latency of every answer, in milliseconds (a stand-in for the model call).
    #[arg(long, default_value_t = 0)]
    base_delay_ms: u64,
    /// Extra latency of the slow variant, in milliseconds.
    #[arg(long, default_value_t = 250)]
    delay_ms: u64,
    /// Print the system prompt (with --canary in it) and exit.
    #[arg(long, conflicts_with = "print_tools")]
    print_system_prompt: bool,
    /// Print the tool definitions (OpenAI tools JSON) and exit.
    #[arg(long)]
    print_tools: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.print_system_prompt {
        print!("{}", vaia_example_agent::system_prompt(&args.canary));
        return Ok(());
    }
    if args.print_tools {
        println!(
            "{}",
            serde_json::to_string_pretty(&vaia_example_agent::tools())?
        );
        return Ok(());
    }
    let config = AgentConfig {
        variant: args.variant,
        canary: args.canary,
        base_delay: Duration::from_millis(args.base_delay_ms),
        delay: Duration::from_millis(args.delay_ms),
    };
    let agent = spawn(config, &format!("{}:{}", args.bind, args.port)).await?;
    let line = format!("vaia-example-agent listening on http://{}", agent.addr);
    println!("{line}");
    std::io::stdout().flush()?;
    eprintln!("{line} (variant {})", args.variant.as_str());
    tokio::signal::ctrl_c().await?;
    agent.stop().await;
    Ok(())
}
