//! (being written)
pub async fn serve(_a: crate::cli::EchoServeArgs, _s: crate::net::Shutdown) -> anyhow::Result<()> {
    anyhow::bail!("being written")
}
pub async fn ping(_a: crate::cli::EchoPingArgs, _s: crate::net::Shutdown) -> anyhow::Result<()> {
    anyhow::bail!("being written")
}
