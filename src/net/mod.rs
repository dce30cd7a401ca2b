//! Networking shared by every subcommand: address parsing and resolution,
//! binding with the `listening on` announcement, the accept loop with its
//! connection limits, and the Ctrl-C shutdown signal.

pub mod accept;
pub mod addr;
pub mod shutdown;

pub use accept::{AcceptLimits, Admission, ConnSlot, accept_loop};
pub use addr::{bind_tcp, bind_udp, resolve};
pub use shutdown::Shutdown;
