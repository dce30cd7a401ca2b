//! The `soquete` binary: parse arguments, set up logging, run the subcommand,
//! and turn the outcome into one line and an exit status (0 ok, 1 failure,
//! 2 usage, 130 Ctrl-C).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use soquete::cli::{BenchCommand, ChatCommand, Cli, Command, EchoCommand, FilesCommand};
use soquete::net::Shutdown;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose, cli.quiet);

    let mut builder = tokio::runtime::Builder::new_multi_thread();
    match &cli.command {
        Command::Chat(ChatCommand::Serve(args)) => {
            builder.worker_threads(args.threads as usize);
        }
        Command::Bench(BenchCommand::Chat(args)) => {
            if let Some(n) = args.threads {
                builder.worker_threads(n as usize);
            }
        }
        _ => {}
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let (result, signalled) = runtime.block_on(async {
        let shutdown = Shutdown::on_signals();
        let result = dispatch(cli.command, cli.quiet, shutdown.clone()).await;
        (result, shutdown.signalled())
    });
    // Do not wait for stray blocking tasks (a stdin reader) at exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));

    match result {
        Ok(()) if signalled => ExitCode::from(130),
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(if signalled { 130 } else { 1 })
        }
    }
}

async fn dispatch(command: Command, quiet: bool, shutdown: Shutdown) -> anyhow::Result<()> {
    match command {
        Command::Chat(ChatCommand::Serve(args)) => soquete::chat::server::run(args, shutdown).await,
        Command::Chat(ChatCommand::Join(args)) => soquete::chat::join::run(args, shutdown).await,
        Command::Echo(EchoCommand::Serve(args)) => soquete::echo::serve(args, shutdown).await,
        Command::Echo(EchoCommand::Ping(args)) => soquete::echo::ping(args, shutdown).await,
        Command::Files(FilesCommand::Serve(args)) => {
            soquete::files::server::run(args, shutdown).await
        }
        Command::Files(FilesCommand::List(args)) => soquete::files::client::run_list(args).await,
        Command::Files(FilesCommand::Get(args)) => {
            soquete::files::get::run(args, quiet, shutdown).await
        }
        Command::Files(FilesCommand::Put(args)) => {
            soquete::files::put::run(args, quiet, shutdown).await
        }
        Command::Bench(BenchCommand::Chat(args)) => soquete::bench::chat(args, shutdown).await,
        Command::Bench(BenchCommand::Handshakes(args)) => {
            soquete::bench::handshakes::run(args, shutdown).await
        }
        Command::Demo(args) => soquete::demo::run(args, shutdown).await,
    }
}

fn init_tracing(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .compact()
        .init();
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
