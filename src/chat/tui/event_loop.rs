//! The terminal chat's loop: one `select!` over terminal events (keys,
//! paste, resize), what the connection delivers, captured stderr lines, a
//! quit deadline and Ctrl-C; after each wake-up, every queued event is
//! applied and the screen drawn once. The model decides everything; this
//! file only moves events and actions between it and the world.

use std::time::Duration;

use chrono::{Local, TimeZone};
use crossterm::event::{Event, EventStream};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use super::app::{Action, App, Link};
use super::capture::strip_ansi;
use super::keys;
use super::screen::Screen;
use super::text::clean;
use super::transcript::Transcript;
use crate::chat::client::{ClientEvent, Request};
use crate::net::Shutdown;

/// After `/quit`, the longest wait for the server to close.
const QUIT_WAIT: Duration = Duration::from_secs(3);
/// Events applied between two draws at most.
const BATCH: usize = 512;

/// What the connection delivers.
#[derive(Debug)]
pub enum Incoming {
    /// From the client core.
    Client(ClientEvent),
    /// `--raw`: connected to this peer.
    RawConnected(String),
    /// `--raw`: one message from the server.
    Raw(String),
    /// `--raw`: the connection ended (the screen stays for reading).
    RawClosed(String),
    /// The first connection failed: leave with this error.
    Failed(anyhow::Error),
}

/// Where the user's actions go.
pub enum Sink {
    Client(mpsc::Sender<Request>),
    Raw(mpsc::Sender<String>),
}

/// Runs the screen until the user leaves, the connection ends for good, or
/// Ctrl-C; the terminal is restored before this returns.
pub async fn run(
    app: &mut App,
    mut incoming: mpsc::Receiver<Incoming>,
    sink: Sink,
    mut transcript: Option<Transcript>,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let (mut screen, mut stderr) = Screen::enter()?;
    let mut keys = EventStream::new();
    let mut quit_by: Option<Instant> = None;
    let mut open = true;
    loop {
        if let Some(t) = transcript.as_mut()
            && !app.log.is_empty()
            && let Err(e) = t.write(app.log.drain(..))
        {
            app.error(&now(), clean(&format!("cannot write the log: {e}")));
            transcript = None;
        }
        app.log.clear();
        screen.draw(app)?;
        if std::mem::take(&mut app.bell) {
            screen.bell();
        }
        if app.quitting && quit_by.is_none() {
            quit_by = Some(Instant::now() + QUIT_WAIT);
        }
        let actions = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = sleep_until(quit_by.unwrap_or_else(Instant::now)), if quit_by.is_some() => return Ok(()),
            ev = keys.next() => match ev {
                Some(Ok(ev)) => on_terminal(app, ev),
                Some(Err(e)) => return Err(anyhow::anyhow!("cannot read the terminal: {e}")),
                None => return Ok(()),
            },
            first = incoming.recv(), if open => match first {
                Some(first) => {
                    let mut batch = vec![first];
                    while batch.len() < BATCH {
                        match incoming.try_recv() {
                            Ok(more) => batch.push(more),
                            Err(_) => break,
                        }
                    }
                    for inc in batch {
                        on_incoming(app, inc)?;
                    }
                    Vec::new()
                }
                None if matches!(sink, Sink::Raw(_)) => {
                    open = false; // keep the screen for reading; /quit leaves
                    Vec::new()
                }
                None => return Ok(()), // the client is done
            },
            line = next_line(&mut stderr) => {
                match line {
                    Some(l) => app.info(0, &now(), clean(&strip_ansi(&l))),
                    None => stderr = None,
                }
                Vec::new()
            },
        };
        for action in actions {
            match action {
                Action::Request(r) => send(app, &sink, SinkItem::Request(r)),
                Action::RawLine(l) => send(app, &sink, SinkItem::Line(l)),
                Action::Redraw => screen.clear()?,
                Action::Exit => return Ok(()),
            }
        }
    }
}

fn on_terminal(app: &mut App, ev: Event) -> Vec<Action> {
    match ev {
        Event::Key(k) => keys::on_key(app, k, &now()),
        Event::Paste(text) => {
            app.paste(&text, &now());
            Vec::new()
        }
        // A resize is picked up by the next draw.
        _ => Vec::new(),
    }
}

fn on_incoming(app: &mut App, inc: Incoming) -> anyhow::Result<()> {
    let t = now();
    match inc {
        Incoming::Client(ev) => app.on_client(ev, &t, &stamp),
        Incoming::Raw(text) => app.on_raw(&text, &t),
        Incoming::RawConnected(peer) => {
            app.link = Link::Connected;
            let text = format!(
                "connected to {} (raw chat: each line is sent as typed)",
                clean(&peer)
            );
            app.info(0, &t, text.clone());
            let i = app.window(&app.server.clone(), super::window::Kind::Room);
            app.info(i, &t, text);
            app.switch_to(i);
        }
        Incoming::RawClosed(reason) => {
            app.link = Link::Lost(clean(&reason));
            let i = app.active;
            app.info(i, &t, format!("{}; /quit to leave", clean(&reason)));
        }
        Incoming::Failed(e) => return Err(e),
    }
    Ok(())
}

enum SinkItem {
    Request(Request),
    Line(String),
}

/// Hands an action to the connection without waiting: a full queue (the
/// server is unreachable and much is typed) is said, not blocked on.
fn send(app: &mut App, sink: &Sink, item: SinkItem) {
    let full = match (sink, item) {
        (Sink::Client(tx), SinkItem::Request(r)) => tx.try_send(r).is_err(),
        (Sink::Raw(tx), SinkItem::Line(l)) => tx.try_send(l).is_err(),
        _ => false,
    };
    if full && !app.quitting {
        app.error(&now(), "not sent: the connection is not keeping up".into());
    }
}

async fn next_line(rx: &mut Option<mpsc::Receiver<String>>) -> Option<String> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The local time of day, `HH:MM`.
fn now() -> String {
    Local::now().format("%H:%M").to_string()
}

/// A server timestamp (ms since the epoch) as local `HH:MM`.
fn stamp(ts_ms: u64) -> String {
    match Local.timestamp_millis_opt(ts_ms as i64).single() {
        Some(t) if ts_ms > 0 => t.format("%H:%M").to_string(),
        _ => now(),
    }
}
