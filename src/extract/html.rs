//! `html:` — CSS selectors (the scraper crate, built on html5ever) over an HTML page.
//!
//! `for_each` selects the elements to iterate, e.g. the rows of a legacy status table; each
//! field is a selector within the current element whose text (whitespace collapsed) is the
//! value. A field ending in ` @name` takes that attribute instead; an empty selector (or just
//! `@name`) means the current element itself; a selector starting with `:root` is matched
//! against the whole page.

use scraper::{ElementRef, Html, Selector};

use super::{normalize_text, Row};

struct Field {
    /// `None`: the current element itself.
    selector: Option<Selector>,
    from_root: bool,
    attribute: Option<String>,
}

/// A compiled `html:` rule.
pub struct HtmlExtractor {
    for_each: Option<Selector>,
    fields: Vec<Field>,
}

/// Parses a CSS selector; the error names what is wrong in one line.
pub fn selector(text: &str) -> Result<Selector, String> {
    super::limits::check_expression(text).map_err(|e| format!("CSS selector: {e}"))?;
    Selector::parse(text).map_err(|e| {
        let shown = e.to_string();
        // Some of the parser's errors print as "Unexpected error ... report this"; their
        // debug form names the problem (`DanglingCombinator`).
        let detail = if shown.contains("report this") {
            format!("{e:?}")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            shown
        };
        format!("invalid CSS selector {text:?}: {detail}")
    })
}

fn field(expr: &str) -> Result<Field, String> {
    let expr = expr.trim();
    let (sel, attribute) = match expr.rfind('@') {
        Some(at) if at == 0 || expr[..at].ends_with(' ') => {
            let name = expr[at + 1..].trim();
            if name.is_empty() {
                return Err(format!("attribute name missing after `@` in {expr:?}"));
            }
            (expr[..at].trim(), Some(name.to_owned()))
        }
        _ => (expr, None),
    };
    Ok(Field {
        selector: if sel.is_empty() {
            None
        } else {
            Some(selector(sel)?)
        },
        from_root: sel.starts_with(":root"),
        attribute,
    })
}

impl HtmlExtractor {
    /// Compiles `for_each` and the fields (in field order).
    pub fn new<'a>(
        for_each: Option<&str>,
        fields: impl IntoIterator<Item = &'a str>,
    ) -> Result<HtmlExtractor, String> {
        Ok(HtmlExtractor {
            for_each: for_each.map(selector).transpose()?,
            fields: fields.into_iter().map(field).collect::<Result<_, _>>()?,
        })
    }

    /// Checks a field expression (for config validation).
    pub fn check_field(expr: &str) -> Result<(), String> {
        field(expr).map(|_| ())
    }

    /// Parses a page. HTML parsing itself never fails (browsers' error recovery), but a page
    /// nested deeper than [`super::limits::MAX_MARKUP_DEPTH`] is refused unparsed: html5ever
    /// takes time quadratic in the depth.
    pub fn parse(text: &str) -> Result<Html, super::ExtractError> {
        if super::limits::markup_too_deep(text, true) {
            return Err(super::ExtractError::Parse(format!(
                "elements nest deeper than {} levels",
                super::limits::MAX_MARKUP_DEPTH
            )));
        }
        Ok(Html::parse_document(text))
    }

    /// One row per selected element.
    pub fn extract(&self, page: &Html, rows: &mut Vec<Row>) {
        let root = page.root_element();
        let mut emit = |el: ElementRef| {
            let row = self
                .fields
                .iter()
                .map(|f| {
                    let target = match &f.selector {
                        None => Some(el),
                        Some(s) if f.from_root => page.select(s).next(),
                        Some(s) => el.select(s).next(),
                    }?;
                    match &f.attribute {
                        Some(a) => target.value().attr(a).map(normalize_text),
                        None => Some(normalize_text(&target.text().collect::<String>())),
                    }
                })
                .collect();
            rows.push(row);
        };
        match &self.for_each {
            None => emit(root),
            Some(s) => page.select(s).for_each(emit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<html><head><title>Backend status</title></head><body>
      <h1 class="cluster">eu-1</h1>
      <table class="tbl"><tr><th>#</th><th>Server</th><th>Status</th><th>Sessions</th></tr>
        <tr class="active"><td>1</td><td><a href="/s/web1">web1</a></td><td> UP </td><td>1,204</td></tr>
        <tr class="maintain"><td>2</td><td><a href="/s/web2">web2</a></td><td>MAINT
            (via admin)</td><td>0</td></tr>
      </table></body></html>"#;

    #[test]
    fn table_rows_by_column_with_attributes_and_page_fields() {
        let x = HtmlExtractor::new(
            Some("table.tbl tr.active, table.tbl tr.maintain"),
            [
                "td:nth-child(2)",
                "td:nth-child(3)",
                "td:nth-child(4)",
                "td:nth-child(2) a @href",
                ":root h1.cluster",
                "@class",
            ],
        )
        .unwrap();
        let mut rows = Vec::new();
        x.extract(&HtmlExtractor::parse(PAGE).unwrap(), &mut rows);
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(
            rows,
            vec![
                vec![
                    s("web1"),
                    s("UP"),
                    s("1,204"),
                    s("/s/web1"),
                    s("eu-1"),
                    s("active")
                ],
                vec![
                    s("web2"),
                    s("MAINT (via admin)"),
                    s("0"),
                    s("/s/web2"),
                    s("eu-1"),
                    s("maintain")
                ],
            ]
        );
    }

    #[test]
    fn whole_page_and_missing_fields() {
        let x = HtmlExtractor::new(None, ["title", "nav.missing"]).unwrap();
        let mut rows = Vec::new();
        x.extract(&HtmlExtractor::parse(PAGE).unwrap(), &mut rows);
        assert_eq!(rows, vec![vec![Some("Backend status".to_owned()), None]]);
        assert!(HtmlExtractor::new(Some("tr[["), ["td"]).is_err());
    }
}
