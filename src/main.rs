//! The command line: parse it, load the config, hand over to the modules.

use anyhow::Context;
use clap::{Parser, Subcommand};
use kubegate::config::{self, Config, LogFormat};
use std::path::PathBuf;
use std::process::ExitCode;

// See the mimalloc entry in Cargo.toml: CPU per scraped sample, not RSS.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "kubegate",
    version,
    about = "Hybrid push/pull monitoring gateway for Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (on the embedded default config unless --config is given).
    Run {
        #[arg(long, short = 'c', value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Validate configuration files.
    Check {
        #[command(subcommand)]
        what: CheckWhat,
    },
    /// Run promtool-style rule unit tests.
    Test {
        #[command(subcommand)]
        what: TestWhat,
    },
    /// Print the version.
    Version,
}

#[derive(Subcommand)]
enum TestWhat {
    /// Run promtool unit-test files (`rule_files`, `tests`, ...) unchanged.
    Rules {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CheckWhat {
    /// Check config files and the rule files they name; prints every
    /// error with file, line and key (or group and rule).
    Config {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Check Prometheus rule files.
    Rules {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("kubegate {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Check {
            what: CheckWhat::Config { files },
        } => check_config(&files),
        Command::Check {
            what: CheckWhat::Rules { files },
        } => {
            if check_rule_files(&files) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Test {
            what: TestWhat::Rules { files },
        } => {
            let ok = kubegate::rules::unittest::run_files(
                &files,
                &mut std::io::stdout(),
                &mut std::io::stderr(),
            );
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Run { config } => match run(config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kubegate: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn check_config(files: &[PathBuf]) -> ExitCode {
    let mut ok = true;
    for f in files {
        match config::load_file(f) {
            Ok(c) => {
                let rule_files = c.rule_files.resolve();
                println!(
                    "{}: OK ({} scrape config(s), sink {:?}, {} rule file(s))",
                    f.display(),
                    c.scrape_configs.len(),
                    c.output.sink,
                    rule_files.len()
                );
                ok &= check_rule_files(&rule_files);
            }
            Err(errs) => {
                ok = false;
                for e in &errs.0 {
                    println!("{e}");
                }
                println!("{}: {} error(s)", f.display(), errs.0.len());
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Prints one line per rule file, or every error in it.
fn check_rule_files(files: &[PathBuf]) -> bool {
    let mut ok = true;
    for result in kubegate::rules::group::check_files(files) {
        match result {
            Ok((f, groups, rules)) => {
                println!("{}: OK ({groups} group(s), {rules} rule(s))", f.display())
            }
            Err(errs) => {
                ok = false;
                for e in &errs.0 {
                    println!("{e}");
                }
                if let Some(first) = errs.0.first() {
                    println!("{}: {} error(s)", first.file, errs.0.len());
                }
            }
        }
    }
    ok
}

fn run(path: Option<PathBuf>) -> anyhow::Result<()> {
    let cfg: Config = match &path {
        Some(p) => config::load_file(p)?,
        None => {
            let mut c = config::load_str(
                config::EMBEDDED_DEFAULT,
                "<embedded config/kubegate.yaml>",
                &|k| std::env::var(k).ok(),
            )?;
            // The embedded default is config/kubegate.yaml: its rule files
            // are found beside it, as when it is given with --config.
            c.rule_files
                .set_base(std::path::Path::new("config/kubegate.yaml"));
            c
        }
    };
    init_logging(cfg.server.log_format, &cfg.server.log_level);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("kubegate")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(kubegate::run::run(cfg))?;
    // Scrape requests still in flight must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    Ok(())
}

fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
