//! The command line: one clap `Args` struct per subcommand. Names and flags
//! here are the public contract of `shared/design.md`; add, never rename.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::files::datapath::DataPath;

use crate::net::addr::check_syntax;

/// The socket applications of an industrial-networks course, done for real.
#[derive(Debug, Parser)]
#[command(name = "soquete", version, about, propagate_version = true)]
pub struct Cli {
    /// More log output (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only warnings and errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Multi-client chat: server and client (native protocol, raw TCP clients).
    #[command(subcommand)]
    Chat(ChatCommand),
    /// Echo servers and a ping client (TCP and UDP).
    #[command(subcommand)]
    Echo(EchoCommand),
    /// File repository: serve a folder; list, get and put files (verified,
    /// resumable); the chapter's cliente.py and repositorio.py too.
    #[command(subcommand)]
    Files(FilesCommand),
    /// Load generators for the servers above.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Runs a chat server and two clients on loopback and shows what crossed the wire.
    Demo(DemoArgs),
}

#[derive(Debug, Subcommand)]
pub enum ChatCommand {
    /// Serve the chat (native clients and raw TCP clients on the same port).
    Serve(ChatServeArgs),
    /// Join a chat server: line mode when stdin is not a terminal.
    Join(ChatJoinArgs),
}

/// How raw (unframed) clients are relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum RawRelay {
    /// Split into messages, named, one `name: text` line each.
    #[default]
    Lines,
    /// Exactly the chapter's Servidor.py: each read relayed unchanged to every
    /// client including the sender, no names, no server text.
    Verbatim,
}

#[derive(Debug, Args)]
pub struct ChatServeArgs {
    /// Address to listen on (host:port; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8000", value_parser = check_syntax)]
    pub listen: String,
    /// Messages per room replayed to a client when it joins (0 = none).
    #[arg(long, default_value_t = 50)]
    pub history: u16,
    /// Most clients connected at once.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_clients: u32,
    /// Most clients from one IP address (0 = unlimited).
    #[arg(long, default_value_t = 100)]
    pub max_per_ip: u32,
    /// Messages per second a client may send, sustained (0 = no limit).
    #[arg(long, default_value_t = 20.0)]
    pub rate_limit: f64,
    /// Messages a client may send in a burst above the sustained rate.
    #[arg(long, default_value_t = 40)]
    pub rate_burst: u32,
    /// Longest chat message, in bytes.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=60_000))]
    pub max_message: u32,
    /// Frames queued for a client before it counts as not reading and is
    /// disconnected.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(8..))]
    pub queue: u32,
    /// How raw clients are relayed (`verbatim` reproduces the chapter's server).
    #[arg(long, value_enum, default_value_t = RawRelay::Lines)]
    pub raw_relay: RawRelay,
    /// Time a native client has to send its hello.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub handshake_timeout: Duration,
    /// How long a new connection may stay silent before it counts as raw.
    #[arg(long, default_value = "250ms", value_parser = parse_duration)]
    pub detect_window: Duration,
    /// Idle time after which a native client is pinged; twice this without
    /// an answer disconnects it.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// Rooms with more members than this get no join/leave notices (0:
    /// always announce); the member count still comes with every join.
    #[arg(long, default_value_t = 500)]
    pub announce_limit: u32,
    /// Also log the text of chat messages (off: only connects and leaves).
    #[arg(long)]
    pub log_messages: bool,
    /// Worker threads. The hub serialises fan-out anyway, and one thread
    /// spent a quarter less CPU per delivery than two on a 2-core machine
    /// (README); more help when thousands of clients must be written to on
    /// a machine with cores to spare.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: u32,
    /// Send every batch at once (TCP_NODELAY). By default the kernel may
    /// coalesce writes to a client that has not acknowledged the previous
    /// ones (Nagle's algorithm, as ncat does): a lone message still leaves
    /// at once, and under heavy fan-out this costs a third less CPU per
    /// delivery (measured: docs in README).
    #[arg(long)]
    pub nodelay: bool,
    /// Serve the chapter's encrypted chat (Exemplo 2, Fernet) instead: its
    /// key is sent in clear, so anyone on the network can read the chat.
    #[arg(long, conflicts_with_all = ["passphrase_source", "show_fingerprint"])]
    pub fernet: bool,
    /// Secure mode (TLS 1.3 and a shared passphrase): see docs/security.md.
    #[command(flatten)]
    pub secure: crate::secure::PassphraseArgs,
}

#[derive(Debug, Args)]
pub struct ChatJoinArgs {
    /// Server address (host:port).
    #[arg(value_parser = check_syntax)]
    pub addr: String,
    /// Name to use (default: the server assigns one).
    #[arg(long)]
    pub name: Option<String>,
    /// Room to join after connecting (in addition to the lobby).
    #[arg(long)]
    pub room: Option<String>,
    /// Talk to a raw chat server (the chapter's Servidor.py, ncat --chat):
    /// each line is sent as-is without framing or newline.
    #[arg(long, conflicts_with = "passphrase_source")]
    pub raw: bool,
    /// With --raw: end each sent line with a newline (for ncat --chat).
    #[arg(long, requires = "raw")]
    pub newline: bool,
    /// Exit when the connection is lost instead of reconnecting.
    #[arg(long)]
    pub no_reconnect: bool,
    /// Talk to the chapter's encrypted chat server (Exemplo 2, Fernet): its
    /// key comes in clear, so anyone on the network can read the chat.
    #[arg(long, conflicts_with_all = ["raw", "name", "room", "passphrase_source"])]
    pub fernet: bool,
    /// Secure mode (TLS 1.3 with a pinned server key and a passphrase).
    #[command(flatten)]
    pub secure: crate::secure::PassphraseArgs,
    /// Use the plain line mode even on a terminal (the full-screen chat is
    /// the default when stdin and stdout are both terminals).
    #[arg(long)]
    pub plain: bool,
    /// Append a transcript of the chat (timestamped lines) to FILE.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum FilesCommand {
    /// Publish a folder read-only (uploads into another with --uploads).
    Serve(FilesServeArgs),
    /// List a file server's files (recursively, sorted, size and time).
    List(FilesListArgs),
    /// Download files or folders (verified; resumes interrupted downloads).
    Get(FilesGetArgs),
    /// Upload files or folders (the server must run with --uploads).
    Put(FilesPutArgs),
}

#[derive(Debug, Args)]
pub struct FilesServeArgs {
    /// Folder to publish (recursively, read-only).
    pub dir: PathBuf,
    /// Address to listen on (host:port; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8001", value_parser = check_syntax)]
    pub listen: String,
    /// Accept uploads (files put) into this folder.
    #[arg(long, value_name = "DIR2")]
    pub uploads: Option<PathBuf>,
    /// Most clients connected at once.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_clients: u32,
    /// Most clients from one IP address (0 = unlimited).
    #[arg(long, default_value_t = 32)]
    pub max_per_ip: u32,
    /// Most files sent or received at once, over all clients; each costs
    /// two 1 MiB buffers. Others wait their turn.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub max_transfers: u32,
    /// Close a client that sends nothing, or reads nothing, this long.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// How long a new connection may stay silent before it counts as the
    /// chapter's cliente.py (which waits for the listing).
    #[arg(long, default_value = "250ms", value_parser = parse_duration)]
    pub detect_window: Duration,
    /// Throttle each file sent to RATE bytes per second (e.g. 10M, 512K).
    #[arg(long, value_name = "RATE", value_parser = crate::files::transfer::parse_rate)]
    pub limit_rate: Option<u64>,
    /// How plain clients' files move between file and socket: through a
    /// buffer (read-write), or inside the kernel (splice, sendfile; Linux;
    /// uploads take splice or read-write). See docs/protocol.md.
    #[arg(long, value_enum, default_value_t = DataPath::ReadWrite)]
    pub data_path: DataPath,
    /// Secure mode (TLS 1.3 and a shared passphrase): see docs/security.md.
    #[command(flatten)]
    pub secure: crate::secure::PassphraseArgs,
}

#[derive(Debug, Args)]
pub struct FilesListArgs {
    /// Server address (host:port).
    #[arg(value_parser = check_syntax)]
    pub addr: String,
    /// Folder to list (default: everything).
    pub path: Option<String>,
    /// Print the listing as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// The server is the chapter's repositorio.py: print the names it sends.
    #[arg(long, conflicts_with = "passphrase_source")]
    pub seed: bool,
    /// Secure mode (TLS 1.3 with a pinned server key and a passphrase).
    #[command(flatten)]
    pub secure: crate::secure::PassphraseArgs,
}

#[derive(Debug, Args)]
pub struct FilesGetArgs {
    /// Server address (host:port).
    #[arg(value_parser = check_syntax)]
    pub addr: String,
    /// Files or folders to download (folders recursively).
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Folder to download into.
    #[arg(short = 'o', long = "output", value_name = "DIR", default_value = ".")]
    pub output: PathBuf,
    /// Replace local files that differ from the server's.
    #[arg(long)]
    pub overwrite: bool,
    /// The server is the chapter's repositorio.py (reads to EOF, strips the
    /// trailing OK; no hash to verify against).
    #[arg(long, conflicts_with = "passphrase_source")]
    pub seed: bool,
    /// Throttle to RATE bytes per second (e.g. 10M, 512K).
    #[arg(long, value_name = "RATE", value_parser = crate::files::transfer::parse_rate)]
    pub limit_rate: Option<u64>,
    /// How files move from the socket into files: through a buffer
    /// (read-write) or a pipe, inside the kernel (splice; Linux; plain
    /// connections only).
    #[arg(long, value_enum, default_value_t = DataPath::ReadWrite)]
    pub data_path: DataPath,
    /// Secure mode (TLS 1.3 with a pinned server key and a passphrase).
    #[command(flatten)]
    pub secure: crate::secure::PassphraseArgs,
}

#[derive(Debug, Args)]
pub struct FilesPutArgs {
    /// Server address (host:port).
    #[arg(value_parser = check_syntax)]
    pub addr: String,
    /// Files or folders to upload (folders recursively, under their name).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Replace files on the server that differ.
    #[arg(long)]
    pub overwrite: bool,
    /// Throttle to RATE bytes per second (e.g. 10M, 512K).
    #[arg(long, value_name = "RATE", value_parser = crate::files::transfer::parse_rate)]
    pub limit_rate: Option<u64>,
    /// How files move from files into the socket: through a buffer
    /// (read-write) or inside the kernel (splice, sendfile; Linux; plain
    /// connections only).
    #[arg(long, value_enum, default_value_t = DataPath::ReadWrite)]
    pub data_path: DataPath,
    /// Secure mode (TLS 1.3 with a pinned server key and a passphrase).
    #[command(flatten)]
    pub secure: crate::secure::PassphraseArgs,
}

#[derive(Debug, Subcommand)]
pub enum EchoCommand {
    /// Serve echo over TCP (or UDP with --udp), many clients at once.
    Serve(EchoServeArgs),
    /// Measure round trips to an echo server.
    Ping(EchoPingArgs),
}

#[derive(Debug, Args)]
pub struct EchoServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:50505", value_parser = check_syntax)]
    pub listen: String,
    /// Serve UDP datagrams instead of TCP.
    #[arg(long)]
    pub udp: bool,
    /// Most TCP clients served at once.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_clients: u32,
    /// Most TCP clients from one IP address (0 = unlimited).
    #[arg(long, default_value_t = 100)]
    pub max_per_ip: u32,
    /// Close a TCP connection idle this long.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub idle_timeout: Duration,
}

#[derive(Debug, Args)]
pub struct EchoPingArgs {
    /// Echo server address (host:port).
    #[arg(value_parser = check_syntax)]
    pub addr: String,
    /// Use UDP instead of TCP.
    #[arg(long)]
    pub udp: bool,
    /// Number of probes.
    #[arg(short = 'c', long = "count", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub count: u32,
    /// Bytes per probe.
    #[arg(short = 's', long = "size", default_value_t = 56, value_parser = clap::value_parser!(u32).range(1..=65_000))]
    pub size: u32,
    /// Time between probes.
    #[arg(short = 'i', long = "interval", default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// How long to wait for each reply.
    #[arg(short = 'W', long = "timeout", default_value = "2s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Secure-channel handshakes per second (TLS 1.3 + passphrase check),
    /// client and server in this process on loopback.
    Handshakes(BenchHandshakesArgs),
    /// Load a chat server: N receivers, S senders, M messages; report
    /// deliveries per second and latency.
    Chat(BenchChatArgs),
}

#[derive(Debug, Args)]
pub struct BenchChatArgs {
    /// Chat server address (host:port).
    #[arg(value_parser = check_syntax)]
    pub addr: String,
    /// Connected clients (every one receives).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub clients: u32,
    /// Messages sent in total.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub messages: u64,
    /// Bytes per message text.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(16..=60_000))]
    pub size: u32,
    /// Threads of the load generator (default: one per core). With
    /// `--rate`, 1 keeps the bench's own cross-thread wake-ups out of the
    /// latencies it measures.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub threads: Option<u32>,
    /// How many of the clients send.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub senders: u32,
    /// Offered load in messages per second, all senders together (default:
    /// as fast as the server delivers, with a bounded window per sender).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Drive a raw chat server (ncat --chat, the chapter's Servidor.py).
    #[arg(long, conflicts_with = "passphrase_source")]
    pub raw: bool,
    /// Give up after this long.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// PID of the server process: report its CPU time and peak memory
    /// during the run (Linux, from /proc).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Secure mode, as `chat join`: every client runs the secure channel
    /// (TLS 1.3 and the passphrase) before its hello; not counted in the
    /// measured interval.
    #[command(flatten)]
    pub secure: crate::secure::PassphraseArgs,
}

#[derive(Debug, Args)]
pub struct BenchHandshakesArgs {
    /// How long to measure.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub seconds: Duration,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub concurrency: u32,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to put the demo's temporary files (default: a new temp dir).
    #[arg(long, hide = true)]
    pub workdir: Option<PathBuf>,
}

/// Parses `250ms`, `5s`, `2m`, `1h`, or a bare number of seconds (`0.5`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (e.g. 250ms, 5s, 2m)"))?;
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("unknown unit '{unit}' in '{s}' (use ms, s, m, h)")),
    };
    let secs = n * scale;
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(format!("'{s}' is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
