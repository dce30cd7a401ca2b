//! `soquete demo`: the main job on its defaults, for a newcomer. Starts a
//! chat server on loopback, connects a native client and a raw client that
//! sends exactly what the chapter's `Cliente.py` sends, has both say the
//! chapter's message, and prints what each received and how many bytes each
//! send and receive carried — the numbers the chapter reads off Wireshark.
//! Then a file server publishes a file the size of the chapter's sample
//! (`iguana.jpg`), which `files get` downloads (verified, durable, renamed
//! into place) and which the chapter's `cliente.py` bytes fetch from the same
//! port (the file then `OK`). Everything runs in this process, on 127.0.0.1
//! with free ports and a temporary folder, and shuts down cleanly in a few
//! seconds.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::chat::server::{ServeConfig, serve};
use crate::cli::{DemoArgs, FilesGetArgs};
use crate::files::store::Store;
use crate::net::{Shutdown, bind_tcp};
use crate::sanitize::for_terminal;
use crate::wire::chat::{ChatKind, ClientMsg, PREAMBLE, ServerMsg};
use crate::wire::frame::{DEFAULT_MAX_FRAME, FrameCodec};

/// The message of the chapter's Wireshark walk-through (31 bytes of UTF-8).
pub const CHAPTER_MESSAGE: &str = "Olá turma de redes industriais";
/// Longest any step of the demo may take.
const STEP: Duration = Duration::from_secs(5);
/// The size of the chapter's sample file, `iguana.jpg`: 97 x 1024 + 788
/// bytes, 98 of its server's `send()`s.
const SAMPLE_SIZE: usize = 100_116;

pub async fn run(_args: DemoArgs, shutdown: Shutdown) -> anyhow::Result<()> {
    println!("soquete demo: a chat server and two clients on 127.0.0.1\n");
    let listener = bind_tcp("127.0.0.1:0".parse()?)?;
    let addr = listener.local_addr()?;
    let server_stop = Shutdown::new();
    let cfg = ServeConfig {
        detect_window: Duration::from_millis(150),
        ..ServeConfig::default()
    };
    let server = tokio::spawn(serve(listener, cfg, server_stop.clone()));
    println!("server  chat serve on {addr}");

    let outcome = tokio::select! {
        r = tokio::time::timeout(STEP * 4, conversation(addr)) => r.context("the demo took too long")?,
        _ = shutdown.cancelled() => Ok(()),
    };
    let t0 = Instant::now();
    server_stop.token.cancel();
    server.await.context("server task")??;
    outcome?;
    println!(
        "\nserver  shut down cleanly in {} ms",
        t0.elapsed().as_millis()
    );
    if !shutdown.is_cancelled() {
        files_part().await?;
    }
    println!(
        "\nTry it yourself: `soquete chat serve` in one terminal, then `soquete chat join 127.0.0.1:8000`"
    );
    println!("(or the chapter's Cliente.py, or `nc 127.0.0.1 8000`) in two others.");
    println!("Files: `soquete files serve DIR`, then `soquete files get 127.0.0.1:8001 NAME`.");
    Ok(())
}

/// The file repository part, in a temporary folder removed afterwards.
async fn files_part() -> anyhow::Result<()> {
    let root = std::env::temp_dir().join(format!("soquete-demo-{}", std::process::id()));
    let result = files_in(&root).await;
    let _ = std::fs::remove_dir_all(&root);
    result
}

async fn files_in(root: &Path) -> anyhow::Result<()> {
    let (published, downloads) = (root.join("pub"), root.join("dl"));
    std::fs::create_dir_all(&published).context("cannot make the demo's folder")?;
    std::fs::create_dir_all(&downloads).context("cannot make the demo's folder")?;
    let sample: Vec<u8> = (0..SAMPLE_SIZE).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(published.join("iguana.jpg"), &sample).context("cannot write the sample")?;

    let listener = bind_tcp("127.0.0.1:0".parse()?)?;
    let addr = listener.local_addr()?;
    let mut cfg = crate::files::ServeConfig::new(Store::open(&published)?);
    cfg.detect_window = Duration::from_millis(150);
    let stop = Shutdown::new();
    let server = tokio::spawn(crate::files::serve(listener, cfg, stop.clone()));
    println!("\nserver  files serve on {addr}, publishing iguana.jpg ({SAMPLE_SIZE} bytes)");
    let outcome = tokio::time::timeout(STEP * 2, async {
        let args = FilesGetArgs {
            addr: addr.to_string(),
            names: vec!["iguana.jpg".into()],
            output: downloads.clone(),
            overwrite: false,
            seed: false,
            limit_rate: None,
            data_path: Default::default(),
            secure: Default::default(),
        };
        crate::files::get::run(args, true, Shutdown::new()).await?;
        let got = std::fs::read(downloads.join("iguana.jpg"))?;
        if got != sample {
            bail!("the downloaded file differs from the published one");
        }
        println!(
            "native  files get iguana.jpg: {} bytes, BLAKE3-verified, fsynced, renamed into place",
            got.len()
        );
        // What the chapter's cliente.py sends: nothing until the listing
        // came, then `GET name`; it reads until the server closes.
        let mut script = TcpStream::connect(addr).await?;
        let mut listing = vec![0u8; 1024];
        let n = script.read(&mut listing).await?;
        script.write_all(b"GET iguana.jpg").await?;
        let mut body = Vec::new();
        script.read_to_end(&mut body).await?;
        let file_then_ok = body.strip_suffix(b"OK") == Some(&sample[..]);
        if !file_then_ok {
            bail!("the chapter's client did not get the file then OK");
        }
        println!(
            "script  cliente.py's bytes on the same port: listing \"{}\\n\" ({n} bytes), then {} bytes: the file + \"OK\"",
            for_terminal(String::from_utf8_lossy(&listing[..n]).trim_end()),
            body.len()
        );
        Ok(())
    })
    .await
    .context("the file demo took too long")?;
    stop.token.cancel();
    server.await.context("file server task")??;
    outcome
}

async fn conversation(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    // ana speaks soquete's native protocol.
    let mut ana = TcpStream::connect(addr).await?;
    ana.set_nodelay(true)?;
    let mut hello = BytesMut::from(&PREAMBLE[..]);
    ClientMsg::Hello {
        name: "ana".into(),
        software: crate::SOFTWARE.into(),
    }
    .encode(&mut hello)?;
    ana.write_all(&hello).await?;
    let mut ana_in = Inbox::default();
    ana_in
        .until(&mut ana, |m| matches!(m, ServerMsg::Event(_)))
        .await?;
    println!(
        "ana     joined with the native protocol ({} bytes of hello)",
        hello.len()
    );

    // The script side: raw TCP, no framing, exactly as the chapter's client.
    let mut script = TcpStream::connect(addr).await?;
    script.set_nodelay(true)?;
    let welcome = read_raw_until(&mut script, "joined lobby").await?;
    let script_name = welcome
        .lines()
        .find_map(|l| l.strip_prefix("* welcome, ")?.split('!').next())
        .unwrap_or("guest")
        .to_owned();
    println!("script  joined as {script_name}, raw TCP like the chapter's Cliente.py\n");

    let say = ClientMsg::Say {
        room: "lobby".into(),
        text: CHAPTER_MESSAGE.into(),
    }
    .to_bytes()?;
    ana.write_all(&say).await?;
    println!(
        "ana    -> server  {:>3} bytes: one frame = 4 length + 1 type + 2+5 room \"lobby\" + 2+{} text",
        say.len(),
        CHAPTER_MESSAGE.len()
    );
    let line = read_raw_until(&mut script, CHAPTER_MESSAGE).await?;
    println!(
        "server -> script  {:>3} bytes: {:?} (a named text line)",
        line.len(),
        line.lines().last().unwrap_or_default()
    );

    script.write_all(CHAPTER_MESSAGE.as_bytes()).await?;
    println!(
        "script -> server  {:>3} bytes: the chapter's segment, no framing, no newline",
        CHAPTER_MESSAGE.len()
    );
    let got = ana_in
        .until(
            &mut ana,
            |m| matches!(m, ServerMsg::Chat(c) if c.from != "ana" && c.kind == ChatKind::Say),
        )
        .await?;
    let frame_len = got
        .iter()
        .rev()
        .find(|m| matches!(m, ServerMsg::Chat(_)))
        .map(|m| m.to_bytes().map(|b| b.len()))
        .transpose()?
        .unwrap_or(0);
    println!(
        "server -> ana     {frame_len:>3} bytes: one chat frame (id, server time, room, sender, text)"
    );

    println!("\nana received:");
    for m in got {
        if let ServerMsg::Chat(c) = m {
            println!(
                "  [{}] {}: {}",
                c.room,
                for_terminal(&c.from),
                for_terminal(&c.text)
            );
        }
    }
    println!("script received (raw lines):");
    let tail = read_raw_until(&mut script, &format!("{script_name}: {CHAPTER_MESSAGE}")).await?;
    for l in line
        .lines()
        .chain(tail.lines())
        .filter(|l| l.contains(CHAPTER_MESSAGE))
    {
        println!("  {}", for_terminal(l));
    }
    ana.write_all(
        &ClientMsg::Quit {
            reason: "demo over".into(),
        }
        .to_bytes()?,
    )
    .await?;
    Ok(())
}

/// Frames a native client has read, and how many bytes carried them.
#[derive(Default)]
struct Inbox {
    buf: BytesMut,
    bytes: usize,
    msgs: Vec<ServerMsg>,
}

impl Inbox {
    /// Reads until a message matching `done` arrives; returns all read so far.
    async fn until(
        &mut self,
        s: &mut TcpStream,
        done: impl Fn(&ServerMsg) -> bool,
    ) -> anyhow::Result<Vec<ServerMsg>> {
        let codec = FrameCodec::new(DEFAULT_MAX_FRAME);
        loop {
            while let Some(f) = codec.decode_frame(&mut self.buf)? {
                let mut hit = false;
                for m in ServerMsg::decode(&f)?.expand() {
                    hit |= done(&m);
                    self.msgs.push(m);
                }
                if hit {
                    return Ok(std::mem::take(&mut self.msgs));
                }
            }
            let n = tokio::time::timeout(STEP, s.read_buf(&mut self.buf)).await??;
            if n == 0 {
                bail!("server closed the connection");
            }
            self.bytes += n;
        }
    }
}

/// Reads raw text until `needle` appears.
async fn read_raw_until(s: &mut TcpStream, needle: &str) -> anyhow::Result<String> {
    let mut got = Vec::new();
    loop {
        let text = String::from_utf8_lossy(&got);
        if text.contains(needle) {
            return Ok(text.into_owned());
        }
        let mut tmp = [0u8; 4096];
        let n = tokio::time::timeout(STEP, s.read(&mut tmp)).await??;
        if n == 0 {
            bail!("server closed the connection");
        }
        got.extend_from_slice(&tmp[..n]);
    }
}
