//! The text exposition: the registry's families (self-metrics, process) and the user's
//! families (rendered by [`crate::registry`] directly), merged in name order as the prometheus
//! crate's gather would order them.

use prometheus::{Encoder, Registry, TextEncoder};

use crate::registry::Families;

/// Renders every family whose name `include` accepts.
pub fn render(
    registry: &Registry,
    families: &Families,
    include: impl Fn(&str) -> bool,
) -> anyhow::Result<Vec<u8>> {
    let mut chunks: Vec<(String, Vec<u8>)> = families.render();
    let encoder = TextEncoder::new();
    for family in registry.gather() {
        let mut text = Vec::new();
        encoder.encode(std::slice::from_ref(&family), &mut text)?;
        chunks.push((family.name().to_owned(), text));
    }
    chunks.retain(|(name, _)| include(name));
    chunks.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::with_capacity(chunks.iter().map(|c| c.1.len()).sum());
    for (_, text) in chunks {
        out.extend_from_slice(&text);
    }
    Ok(out)
}
