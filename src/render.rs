//! One exposition from everything `/metrics` shows: the user's families, the exporter's own
//! and the process collector's, merged in name order. It sits above the families it reads
//! ([`crate::registry`], [`crate::selfmetrics`]); the text format's primitives are in
//! [`crate::exposition`].

use prometheus::{Encoder, Registry, TextEncoder};

use crate::exposition::{concat, Chunk};
use crate::registry::{Families, FamilySnapshot};
use crate::selfmetrics::SelfMetrics;

/// Renders every family whose name `include` accepts: the user's, the exporter's own, and
/// what `registry` holds (the process collector), merged in name order.
pub fn render(
    registry: &Registry,
    families: &Families,
    self_metrics: &SelfMetrics,
    include: impl Fn(&str) -> bool,
) -> anyhow::Result<Vec<u8>> {
    let mut chunks: Vec<Chunk> = families.render();
    self_metrics.render(&mut chunks);
    let encoder = TextEncoder::new();
    for family in registry.gather() {
        let mut text = Vec::new();
        encoder.encode(std::slice::from_ref(&family), &mut text)?;
        chunks.push((family.name().to_owned(), text));
    }
    Ok(concat(chunks, include))
}

/// Like [`render`] with everything included, but the families in `saved` are rendered from
/// those copies (what a checkpoint just saved) instead of their live tables.
pub fn render_saved(
    registry: &Registry,
    families: &Families,
    self_metrics: &SelfMetrics,
    saved: &[FamilySnapshot],
) -> anyhow::Result<Vec<u8>> {
    let mut chunks: Vec<Chunk> = families.render_with(saved);
    self_metrics.render(&mut chunks);
    let encoder = TextEncoder::new();
    for family in registry.gather() {
        let mut text = Vec::new();
        encoder.encode(std::slice::from_ref(&family), &mut text)?;
        chunks.push((family.name().to_owned(), text));
    }
    Ok(concat(chunks, |_| true))
}
