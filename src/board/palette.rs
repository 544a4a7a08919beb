//! The board's colours: a tone per level (the declared states' order mapped onto five tones),
//! for light and dark pages and for badges, with the WCAG contrast arithmetic that a test
//! holds them to (AA: 4.5:1 for text), so no colour is chosen by eye.

/// How bad a state is, for colour and order: a metric's declared states, best first, are
/// spread over ok → minor → major → critical; `unknown` is grey and sorts as the worst
/// (a component nobody can see is not shown behind a green one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tone {
    Ok,
    Minor,
    Major,
    Critical,
    Unknown,
}

impl Tone {
    /// Every tone, best first.
    pub const ALL: [Tone; 5] = [
        Tone::Ok,
        Tone::Minor,
        Tone::Major,
        Tone::Critical,
        Tone::Unknown,
    ];

    /// The tone of level `level` of a metric with `declared` states (`declared` itself, or
    /// more, is `unknown`).
    pub fn of(level: usize, declared: usize) -> Tone {
        if level >= declared {
            return Tone::Unknown;
        }
        if level == 0 {
            return Tone::Ok;
        }
        if level + 1 == declared {
            return Tone::Critical;
        }
        // In between: the first half of the way minor, the rest major.
        if level * 2 < declared {
            Tone::Minor
        } else {
            Tone::Major
        }
    }

    /// The name in JSON and the CSS class's suffix.
    pub fn as_str(self) -> &'static str {
        match self {
            Tone::Ok => "ok",
            Tone::Minor => "minor",
            Tone::Major => "major",
            Tone::Critical => "critical",
            Tone::Unknown => "unknown",
        }
    }

    /// The colour on a light page (text on [`LIGHT_CARD`] and [`LIGHT_BG`]; a badge's
    /// background under white text).
    pub fn light(self) -> &'static str {
        match self {
            Tone::Ok => "#1a7f37",
            Tone::Minor => "#845d00",
            Tone::Major => "#b04a00",
            Tone::Critical => "#cf222e",
            Tone::Unknown => "#59636e",
        }
    }

    /// The colour on a dark page (text on [`DARK_CARD`] and [`DARK_BG`]).
    pub fn dark(self) -> &'static str {
        match self {
            Tone::Ok => "#3fb950",
            Tone::Minor => "#d29922",
            Tone::Major => "#f0883e",
            Tone::Critical => "#ff7b72",
            Tone::Unknown => "#9198a1",
        }
    }
}

/// Light theme: page background, tile background, text, secondary text, lines.
pub const LIGHT_BG: &str = "#f6f8fa";
pub const LIGHT_CARD: &str = "#ffffff";
pub const LIGHT_FG: &str = "#1f2328";
pub const LIGHT_MUTE: &str = "#59636e";
pub const LIGHT_LINE: &str = "#d1d9e0";
/// Dark theme: the same roles.
pub const DARK_BG: &str = "#0d1117";
pub const DARK_CARD: &str = "#161b22";
pub const DARK_FG: &str = "#e6edf3";
pub const DARK_MUTE: &str = "#9198a1";
pub const DARK_LINE: &str = "#3d444d";
/// A badge's left half (white text on it).
pub const BADGE_LABEL: &str = "#555555";

/// The relative luminance of `#rrggbb` (WCAG 2.x).
pub fn luminance(hex: &str) -> f64 {
    let channel = |i: usize| {
        let c = u8::from_str_radix(&hex[1 + 2 * i..3 + 2 * i], 16).unwrap_or(0) as f64 / 255.0;
        if c <= 0.03928 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * channel(0) + 0.7152 * channel(1) + 0.0722 * channel(2)
}

/// The contrast ratio of two colours (1 to 21).
pub fn contrast(a: &str, b: &str) -> f64 {
    let (x, y) = (luminance(a), luminance(b));
    (x.max(y) + 0.05) / (x.min(y) + 0.05)
}

/// The CSS custom properties of both themes, from the constants above (so the page uses the
/// colours the test checks).
pub fn css_variables() -> String {
    let vars = |bg, card, fg, mute, line, tone: fn(Tone) -> &'static str| {
        let mut v = format!("--bg:{bg};--card:{card};--fg:{fg};--mute:{mute};--line:{line}");
        for t in Tone::ALL {
            v.push_str(&format!(";--{}:{}", t.as_str(), tone(t)));
        }
        v
    };
    format!(
        ":root{{color-scheme:light dark;{}}}@media(prefers-color-scheme:dark){{:root{{{}}}}}",
        vars(
            LIGHT_BG,
            LIGHT_CARD,
            LIGHT_FG,
            LIGHT_MUTE,
            LIGHT_LINE,
            Tone::light
        ),
        vars(
            DARK_BG,
            DARK_CARD,
            DARK_FG,
            DARK_MUTE,
            DARK_LINE,
            Tone::dark
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// WCAG AA for text (4.5:1): every tone's colour, the state names and errors are written
    /// in, against both backgrounds of its theme; the page's own text; white on each badge
    /// colour.
    #[test]
    fn every_state_colour_meets_wcag_aa_in_both_themes() {
        let mut failures = Vec::new();
        let mut check = |what: String, fg: &str, bg: &str| {
            let ratio = contrast(fg, bg);
            if ratio < 4.5 {
                failures.push(format!("{what}: {fg} on {bg} is {ratio:.2}:1"));
            }
        };
        for t in Tone::ALL {
            for bg in [LIGHT_BG, LIGHT_CARD] {
                check(format!("light {}", t.as_str()), t.light(), bg);
            }
            for bg in [DARK_BG, DARK_CARD] {
                check(format!("dark {}", t.as_str()), t.dark(), bg);
            }
            check(format!("badge {}", t.as_str()), "#ffffff", t.light());
        }
        for (fg, bg) in [
            (LIGHT_FG, LIGHT_CARD),
            (LIGHT_FG, LIGHT_BG),
            (LIGHT_MUTE, LIGHT_CARD),
            (LIGHT_MUTE, LIGHT_BG),
            (DARK_FG, DARK_CARD),
            (DARK_FG, DARK_BG),
            (DARK_MUTE, DARK_CARD),
            (DARK_MUTE, DARK_BG),
            ("#ffffff", BADGE_LABEL),
        ] {
            check("text".into(), fg, bg);
        }
        assert!(failures.is_empty(), "{failures:#?}");
        // The arithmetic itself: black on white is 21:1, a colour on itself 1:1.
        assert!((contrast("#000000", "#ffffff") - 21.0).abs() < 1e-9);
        assert!((contrast("#777777", "#777777") - 1.0).abs() < 1e-9);
    }

    #[test]
    fn levels_spread_over_the_tones() {
        let tones = |n: usize| (0..=n).map(|l| Tone::of(l, n)).collect::<Vec<_>>();
        use Tone::*;
        assert_eq!(tones(1), [Ok, Unknown]);
        assert_eq!(tones(2), [Ok, Critical, Unknown]);
        assert_eq!(tones(3), [Ok, Minor, Critical, Unknown]);
        assert_eq!(tones(4), [Ok, Minor, Major, Critical, Unknown]);
        assert_eq!(tones(5), [Ok, Minor, Minor, Major, Critical, Unknown]);
    }
}
