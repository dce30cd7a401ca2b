//! `ADDR` handling: `host:port`, `[v6]:port`, host names resolved; binding
//! listeners and printing the `listening on <ip:port>` line scripts wait for.

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, UdpSocket};

/// Why an `ADDR` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AddrError {
    #[error("'{0}' is not host:port (IPv6 as [::1]:8000)")]
    Syntax(String),
    #[error("cannot resolve '{addr}': {cause}")]
    Resolve { addr: String, cause: std::io::Error },
    #[error("'{0}' resolves to no address")]
    NoAddress(String),
    #[error("cannot listen on {addr}: {cause}")]
    Bind {
        addr: SocketAddr,
        cause: std::io::Error,
    },
}

/// Checks the `host:port` shape without resolving (for clap value parsers).
pub fn check_syntax(s: &str) -> Result<String, AddrError> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| AddrError::Syntax(s.to_owned()))?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(AddrError::Syntax(s.to_owned()));
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(AddrError::Syntax(s.to_owned()));
    }
    Ok(s.to_owned())
}

/// Resolves `host:port` to its addresses, literal IPs without a lookup.
pub async fn resolve(s: &str) -> Result<Vec<SocketAddr>, AddrError> {
    check_syntax(s)?;
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Ok(vec![sa]);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(s)
        .await
        .map_err(|cause| AddrError::Resolve {
            addr: s.to_owned(),
            cause,
        })?
        .collect();
    if addrs.is_empty() {
        return Err(AddrError::NoAddress(s.to_owned()));
    }
    Ok(addrs)
}

/// Resolves a listen address to the first address it names.
pub async fn resolve_one(s: &str) -> Result<SocketAddr, AddrError> {
    Ok(resolve(s).await?[0])
}

/// Binds a TCP listener (SO_REUSEADDR so a restarted server gets its port
/// back at once; backlog 1024) and prints `listening on <ip:port>` to stderr.
pub fn bind_tcp(addr: SocketAddr) -> Result<TcpListener, AddrError> {
    let bind = |addr: SocketAddr| -> std::io::Result<TcpListener> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        #[cfg(not(windows))]
        socket.set_reuse_address(true)?;
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        TcpListener::from_std(socket.into())
    };
    let listener = bind(addr).map_err(|cause| AddrError::Bind { addr, cause })?;
    let local = listener
        .local_addr()
        .map_err(|cause| AddrError::Bind { addr, cause })?;
    announce(local);
    Ok(listener)
}

/// Binds a UDP socket and prints `listening on <ip:port>` to stderr.
pub async fn bind_udp(addr: SocketAddr) -> Result<UdpSocket, AddrError> {
    let socket = UdpSocket::bind(addr)
        .await
        .map_err(|cause| AddrError::Bind { addr, cause })?;
    let local = socket
        .local_addr()
        .map_err(|cause| AddrError::Bind { addr, cause })?;
    announce(local);
    Ok(socket)
}

/// The first stderr line of every server; tests and scripts parse it.
fn announce(local: SocketAddr) {
    eprintln!("listening on {local}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_accepts_host_port_and_bracketed_v6() {
        assert!(check_syntax("127.0.0.1:8000").is_ok());
        assert!(check_syntax("localhost:0").is_ok());
        assert!(check_syntax("[::1]:8000").is_ok());
        assert!(check_syntax("::1:8000").is_err());
        assert!(check_syntax("8000").is_err());
        assert!(check_syntax("host:99999").is_err());
        assert!(check_syntax(":80").is_err());
    }

    #[tokio::test]
    async fn resolves_literals_and_localhost() {
        assert_eq!(
            resolve("[::1]:9").await.unwrap(),
            vec!["[::1]:9".parse().unwrap()]
        );
        assert!(!resolve("localhost:9").await.unwrap().is_empty());
    }
}
