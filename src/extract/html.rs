//! `html:` — CSS selectors (the scraper crate, built on html5ever) over an HTML page.
//!
//! `for_each` selects the elements to iterate, e.g. the rows of a legacy status table; each
//! field is a selector within the current element whose text (whitespace collapsed) is the
//! value. A field ending in ` @name` takes that attribute instead, ` @text()` the element's own
//! text (not its nested elements'); an empty selector (or just `@name`) means the current
//! element itself; a selector starting with `:root` is matched against the whole page. Any
//! selector may end in `:contains(text)` filters: of what the rest selects, only the elements
//! whose text contains it.

use scraper::{ElementRef, Html, Selector};

use super::{normalize_text, Row};

struct Field {
    /// `None`: the current element itself.
    selector: Option<TextSelector>,
    from_root: bool,
    value: Value,
}

/// What a field reads of the element it selects.
enum Value {
    /// Its text, nested elements' text included.
    Text,
    /// Its own text only (` @text()`): not that of nested elements (tooltips, badges).
    OwnText,
    /// An attribute (` @name`).
    Attribute(String),
}

/// A CSS selector, optionally ending in `:contains(…)` filters on the selected elements' text
/// (whitespace collapsed, case-sensitive, as jQuery's).
pub struct TextSelector {
    selector: Selector,
    contains: Vec<String>,
}

impl TextSelector {
    fn accepts(&self, el: &ElementRef) -> bool {
        self.contains.is_empty() || {
            let text = normalize_text(&el.text().collect::<String>());
            self.contains
                .iter()
                .all(|needle| text.contains(needle.as_str()))
        }
    }

    fn select_in<'a>(&'a self, el: ElementRef<'a>) -> impl Iterator<Item = ElementRef<'a>> + 'a {
        el.select(&self.selector).filter(|e| self.accepts(e))
    }

    fn select_page<'a>(&'a self, page: &'a Html) -> impl Iterator<Item = ElementRef<'a>> + 'a {
        page.select(&self.selector).filter(|e| self.accepts(e))
    }
}

/// A compiled `html:` rule.
pub struct HtmlExtractor {
    for_each: Option<TextSelector>,
    fields: Vec<Field>,
}

/// Takes trailing `:contains(text)` filters off a selector (`text` bare or quoted).
fn split_contains(text: &str) -> Result<(String, Vec<String>), String> {
    let mut base = text.trim().to_owned();
    let mut needles = Vec::new();
    while base.ends_with(')') {
        let Some(start) = base.rfind(":contains(") else {
            break;
        };
        let arg = base[start + ":contains(".len()..base.len() - 1].trim();
        let unquoted = ['"', '\'']
            .iter()
            .find_map(|q| arg.strip_prefix(*q).and_then(|a| a.strip_suffix(*q)))
            .unwrap_or(arg);
        if unquoted.is_empty() || unquoted.contains(['(', ')']) {
            break;
        }
        needles.insert(0, normalize_text(unquoted));
        base.truncate(start);
        base = base.trim_end().to_owned();
    }
    if base.contains(":contains(") {
        return Err(format!(
            "in {text:?}: `:contains()` is supported at the end of a selector only, where it keeps the elements the rest selects whose text contains it (e.g. for_each: \"tr:contains(accepted conn)\", then the row's cells in the fields)"
        ));
    }
    if !needles.is_empty() && base.contains(',') {
        return Err(format!(
            "in {text:?}: with `:contains()`, give one selector, not a comma-separated list"
        ));
    }
    if !needles.is_empty() && (base.is_empty() || base.ends_with([' ', '>', '+', '~'])) {
        base.push('*');
    }
    Ok((base, needles))
}

/// Where in `selector` the CSS parser stopped (1-based column), for the error message: scraper
/// drops the position, so the selector is parsed again with the same parser to learn it.
fn css_error_column(selector: &str) -> Option<u32> {
    let mut input = cssparser::ParserInput::new(selector);
    let mut parser = cssparser::Parser::new(&mut input);
    match selectors::SelectorList::parse(
        &scraper::selector::Parser,
        &mut parser,
        selectors::parser::ParseRelative::No,
    ) {
        Ok(_) => None,
        Err(e) => Some(e.location.column),
    }
}

/// Parses a CSS selector, with trailing `:contains()` filters; the error names what is wrong
/// in one line.
pub fn selector(text: &str) -> Result<TextSelector, String> {
    super::limits::check_expression(text).map_err(|e| format!("CSS selector: {e}"))?;
    let (base, contains) = split_contains(text)?;
    let selector = Selector::parse(&base).map_err(|e| {
        let shown = e.to_string();
        let debug = format!("{e:?}")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        // Some of the parser's errors print as "Unexpected error ... report this"; their
        // debug form names the problem (`DanglingCombinator`).
        let detail = if let Some(name) = debug
            .split("UnsupportedPseudoClassOrElement(\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
        {
            format!("`:{name}` is not a pseudo-class these selectors know (CSS Selectors level 4: :nth-child(), :not(), :has(), :is(), :first-child, …; `:contains()` works at the end of a selector)")
        } else if shown.contains("report this") {
            super::readable_parse_error(&debug)
        } else {
            shown
        };
        match css_error_column(&base) {
            Some(column) => {
                format!("invalid CSS selector {text:?} at column {column}: {detail}")
            }
            None => format!("invalid CSS selector {text:?}: {detail}"),
        }
    })?;
    Ok(TextSelector { selector, contains })
}

fn field(expr: &str) -> Result<Field, String> {
    let expr = expr.trim();
    let (sel, value) = match expr.rfind('@') {
        Some(at) if at == 0 || expr[..at].ends_with(' ') => {
            let name = expr[at + 1..].trim();
            if name.is_empty() {
                return Err(format!("attribute name missing after `@` in {expr:?}"));
            }
            let value = if name == "text()" {
                Value::OwnText
            } else {
                Value::Attribute(name.to_owned())
            };
            (expr[..at].trim(), value)
        }
        _ => (expr, Value::Text),
    };
    Ok(Field {
        selector: if sel.is_empty() {
            None
        } else {
            Some(selector(sel)?)
        },
        from_root: sel.starts_with(":root"),
        value,
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
                        Some(s) if f.from_root => s.select_page(page).next(),
                        Some(s) => s.select_in(el).next(),
                    }?;
                    match &f.value {
                        Value::Attribute(a) => target.value().attr(a).map(normalize_text),
                        Value::Text => Some(normalize_text(&target.text().collect::<String>())),
                        Value::OwnText => Some(normalize_text(
                            &target
                                .children()
                                .filter_map(|c| c.value().as_text().map(|t| &**t))
                                .collect::<String>(),
                        )),
                    }
                })
                .collect();
            rows.push(row);
        };
        match &self.for_each {
            None => emit(root),
            Some(s) => s.select_page(page).for_each(emit),
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

    /// php-fpm's and HAProxy's pages: rows told apart by their text, cells whose own text is
    /// wanted without a nested tooltip.
    #[test]
    fn rows_by_their_text_and_cells_by_their_own_text() {
        let page = r#"<table>
          <tr><th>pool</th><td>www</td></tr>
          <tr><th>accepted conn</th><td>36426658</td></tr>
          <tr><th>active processes</th><td>3<div class="tip">Current active connections: 3</div></td></tr>
        </table>"#;
        let x = HtmlExtractor::new(Some("tr:contains(\"accepted conn\")"), ["td", "th"]).unwrap();
        let mut rows = Vec::new();
        x.extract(&HtmlExtractor::parse(page).unwrap(), &mut rows);
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(rows, vec![vec![s("36426658"), s("accepted conn")]]);

        // The whole cell reads "3Current active connections: 3"; its own text is "3".
        let x = HtmlExtractor::new(
            Some("tr:contains('active processes')"),
            ["td", "td @text()", ":root td:contains(www)"],
        )
        .unwrap();
        let mut rows = Vec::new();
        x.extract(&HtmlExtractor::parse(page).unwrap(), &mut rows);
        assert_eq!(
            rows,
            vec![vec![s("3Current active connections: 3"), s("3"), s("www")]]
        );
    }

    #[test]
    fn contains_must_end_the_selector_and_unknown_pseudo_classes_are_named() {
        let e = selector("tr:contains(x) td").err().unwrap();
        assert!(e.contains("supported at the end of a selector only"), "{e}");
        let e = selector("a, b:contains(x)").err().unwrap();
        assert!(e.contains("not a comma-separated list"), "{e}");
        let e = selector("tr:matches(x)").err().unwrap();
        assert!(
            e.contains("`:matches` is not a pseudo-class these selectors know"),
            "{e}"
        );
        assert!(selector(":contains(x)").is_ok());
        assert!(selector("tr > :contains(x)").is_ok());
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
