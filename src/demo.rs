//! (being written)
pub async fn run(_a: crate::cli::DemoArgs, _s: crate::net::Shutdown) -> anyhow::Result<()> {
    anyhow::bail!("being written")
}
