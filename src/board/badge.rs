//! SVG badges (`/status/badge.svg`): a label on the left, the worst state's name on the right
//! in its tone's colour, in the shape of the shields.io badges people already embed. Text is
//! text (a `<title>` and `aria-label` too), colour never the only signal; no font is loaded
//! (the viewer's sans-serif), so widths are estimated from the character count.

use super::page::esc;
use super::palette::{Tone, BADGE_LABEL};

/// Approximate width in pixels of `text` at 11px in a sans-serif font.
fn width(text: &str) -> usize {
    text.chars()
        .map(|c| match c {
            'i' | 'j' | 'l' | '.' | ',' | ':' | ';' | '!' | '|' | '\'' | ' ' => 4,
            'm' | 'w' | 'M' | 'W' => 10,
            c if c.is_ascii_uppercase() => 8,
            _ => 7,
        })
        .sum::<usize>()
        + 10
}

/// The badge: `label` on grey, `state` on `tone`'s colour.
pub fn render(label: &str, state: &str, tone: Tone) -> String {
    let (lw, rw) = (width(label), width(state));
    let total = lw + rw;
    let (label, state) = (esc(label), esc(state));
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{total}\" height=\"20\" role=\"img\" aria-label=\"{label}: {state}\">\
<title>{label}: {state}</title>\
<rect width=\"{lw}\" height=\"20\" fill=\"{BADGE_LABEL}\"/><rect x=\"{lw}\" width=\"{rw}\" height=\"20\" fill=\"{color}\"/>\
<g fill=\"#fff\" text-anchor=\"middle\" font-family=\"Verdana,DejaVu Sans,sans-serif\" font-size=\"11\">\
<text x=\"{lx}\" y=\"14\">{label}</text><text x=\"{rx}\" y=\"14\">{state}</text></g></svg>\n",
        color = tone.light(),
        lx = lw / 2,
        rx = lw + rw / 2,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_badge_names_its_state_in_text_and_escapes() {
        let svg = render("web<1>", "down", Tone::Critical);
        assert!(svg.contains("<title>web&lt;1&gt;: down</title>"), "{svg}");
        assert!(svg.contains(">down</text>"), "{svg}");
        assert!(svg.contains(Tone::Critical.light()), "{svg}");
        assert!(!svg.contains("http://") || svg.matches("http://").count() == 1);
        // the xmlns only
    }
}
