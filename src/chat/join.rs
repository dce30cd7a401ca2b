//! (being written)
pub async fn run(_a: crate::cli::ChatJoinArgs, _s: crate::net::Shutdown) -> anyhow::Result<()> {
    anyhow::bail!("chat join: being written")
}
