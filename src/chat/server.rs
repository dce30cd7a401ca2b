//! (being written)
pub async fn run(_a: crate::cli::ChatServeArgs, _s: crate::net::Shutdown) -> anyhow::Result<()> {
    anyhow::bail!("chat serve: being written")
}
