//! The `weir` command: `weir [run] [CONFIG]` serves (default `weir.toml`);
//! `weir check [CONFIG]` validates a config and its plugins and exits;
//! `weir plugin new|build|test` scaffolds, builds and tests a filter (Rust, Python, JS);
//! `weir version` prints the gateway's version and the plugin contract's;
//! `weir demo-upstream ADDR` serves only the built-in echo upstream (for benchmarks).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

mod scaffold;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: weir [run] [CONFIG]         serve (default config: weir.toml)
       weir check [CONFIG]          validate a config and its plugins, then exit
       weir version                 print the gateway's and the plugin contract's versions
       weir plugin new NAME         write a filter: Rust, Python or JS (see weir plugin help)
       weir demo-upstream ADDR      serve only the built-in echo upstream
       weir help                    print this";

fn main() -> ExitCode {
    weir::allocator::tune();
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `weir plugin test` runs a gateway of its own: its info lines would bury the results.
    let level = if args.first().is_some_and(|a| a == "plugin") {
        "warn"
    } else {
        "info"
    };
    tracing_subscriber::fmt()
        // Colours only on a terminal: a log file or collector gets plain text.
        .with_ansi(std::io::stdout().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level)),
        )
        .init();
    if args.first().is_some_and(|a| a == "plugin") {
        return match scaffold::run(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("weir plugin: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let (command, config) = match args.as_slice() {
        [] => ("run", "weir.toml"),
        [flag] if flag == "-h" || flag == "--help" || flag == "help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        [flag] if flag == "version" || flag == "-V" || flag == "--version" => {
            let contract = weir::plugin::CONTRACT;
            println!(
                "weir {} (plugin contract {contract})",
                env!("CARGO_PKG_VERSION")
            );
            return ExitCode::SUCCESS;
        }
        [cmd] if cmd == "run" || cmd == "check" => (cmd.as_str(), "weir.toml"),
        [cmd] if cmd == "demo-upstream" => {
            eprintln!("weir demo-upstream needs an address\n{USAGE}");
            return ExitCode::from(2);
        }
        [cmd, arg] if cmd == "run" || cmd == "check" || cmd == "demo-upstream" => {
            (cmd.as_str(), arg.as_str())
        }
        // A path, not a command misspelt: `weir chek` is an error, `weir my.toml` serves.
        [path] if path.ends_with(".toml") || path.contains('/') => ("run", path.as_str()),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let config = PathBuf::from(config);
    // The control runtime: startup, admin API, health checks, reloads. The proxy itself runs
    // on per-core worker threads with runtimes of their own (see `server`).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("weir: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match command {
            "check" => weir::reload::Reloader::start(&config)
                .await
                .map(|_| println!("{}: ok", config.display())),
            "demo-upstream" => demo_upstream(&config.to_string_lossy()).await,
            _ => serve(&config).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weir: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Serves the demo upstream alone until SIGTERM or Ctrl-C.
async fn demo_upstream(addr: &str) -> anyhow::Result<()> {
    let addr = addr
        .parse()
        .map_err(|e| anyhow::anyhow!("bad address {addr:?}: {e}"))?;
    // A benchmark's upstream: a short grace period is plenty.
    let grace = std::time::Duration::from_secs(5);
    let demo = weir::server::serve_alone(addr, "demo upstream", demo_service(), grace).await?;
    wait_for_signal().await?;
    demo.shutdown().await;
    Ok(())
}

/// The demo upstream (the `weir-demo` crate), as a service of the gateway's server.
fn demo_service() -> weir::server::SideService {
    std::sync::Arc::new(|request| {
        Box::pin(async move {
            weir_demo::handle(request)
                .await
                .map(|reply| weir::body::held_body(reply.data, reply.trailers))
        })
    })
}

/// Waits for SIGTERM or Ctrl-C.
async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: draining"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: draining"),
    }
    Ok(())
}

/// Serves until SIGTERM or Ctrl-C, then drains.
async fn serve(config: &std::path::Path) -> anyhow::Result<()> {
    let running = weir::server::start_with(config, Some(demo_service())).await?;
    wait_for_signal().await?;
    running.shutdown().await;
    Ok(())
}
