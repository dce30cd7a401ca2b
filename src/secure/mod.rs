//! Encrypted chat. For now only the chapter's Fernet chat (Exemplo 2), kept
//! for compatibility: its key crosses the network in clear.

pub mod fernet_client;
pub mod fernet_server;
pub mod fernet_wire;
