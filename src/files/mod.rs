//! `soquete files`: a file repository people can trust with their files.
//! A server publishes a folder (and, if asked, accepts uploads into
//! another); clients list, download and upload over the native protocol
//! (`wire::files`, `docs/protocol.md`), where every file is hashed with
//! BLAKE3 as it streams, received under a temporary name, verified,
//! fsynced and renamed, and resumed after an interruption. The same port
//! serves the chapter's `cliente.py`, and `files get --seed` downloads
//! from the chapter's `repositorio.py`.
//!
//! - `store`: the published folder and path safety
//! - `resume`: temporary files, prefix hashes, verify + fsync + rename;
//!   `batch`: the same for many small files with one filesystem flush;
//!   `sink`: a thread writing small files so the network never waits
//! - `transfer`: the data path (1 MiB blocks, hashing, throttle), which
//!   sends; `receive`, which receives; `direct`: direct I/O for large
//!   received files;
//!   `datapath`: the `--data-path` switch (splice, sendfile);
//!   `budget`: how many transfers at once, and their share of memory;
//!   `pagebuf`: the page-aligned buffers the blocks travel in
//! - `server`, `session`, `chapter`: the server and its two kinds of client;
//!   `hashcache`: the hashes of large files it has already computed
//! - `client`, `get`, `put`, `seed`: the client commands
//! - `progress`: bars and the summary line

pub mod batch;
pub mod budget;
pub mod chapter;
pub mod client;
pub mod committer;
pub mod datapath;
pub mod direct;
pub mod get;
pub mod hashcache;
pub mod pagebuf;
pub mod progress;
pub mod put;
pub mod receive;
pub mod resume;
pub mod seed;
pub mod server;
pub mod session;
pub mod sink;
pub mod staging;
pub mod store;
pub mod transfer;

pub use server::{ServeConfig, serve};
