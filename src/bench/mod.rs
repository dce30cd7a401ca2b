//! (being written)
pub async fn chat(_a: crate::cli::BenchChatArgs, _s: crate::net::Shutdown) -> anyhow::Result<()> {
    anyhow::bail!("being written")
}
