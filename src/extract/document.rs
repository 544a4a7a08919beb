//! Every extractor of one page source, and a document through all of them at once.
//!
//! The document is parsed once per format its rules use (JSON, XML, HTML; regex rules read the
//! text), before any rule runs, so a broken document yields nothing. Pure like the extractors:
//! the result is rows of fields per rule, which the pipeline then turns into updates. Built on
//! the thread that runs it (XPath expressions are not `Send`; see [`super::xml`]).

use regex::Regex;

use super::html::HtmlExtractor;
use super::json::JsonExtractor;
use super::xml::XmlExtractor;
use super::{ExtractError, Row};
use crate::config::{Extractor, RuleConfig};

enum RuleExtractor {
    /// A regex over the whole document: every match.
    Text(Regex),
    Json(JsonExtractor),
    Xml(XmlExtractor),
    Html(HtmlExtractor),
    /// `logfmt:` keys, in field-name order: a row per line of the document that is logfmt
    /// and has one of them (a text protocol's `key=value` lines).
    Logfmt(Vec<String>),
}

/// The compiled extractors of a page source's rules, in rule order.
pub struct DocumentExtractors {
    rules: Vec<RuleExtractor>,
}

fn exprs(fields: &std::collections::BTreeMap<String, String>) -> Vec<&str> {
    fields.values().map(String::as_str).collect()
}

impl DocumentExtractors {
    /// Compiles the extractor of every rule.
    pub fn build(rules: &[RuleConfig]) -> Result<DocumentExtractors, String> {
        let rules = rules
            .iter()
            .enumerate()
            .map(|(i, rule)| {
                let name = rule.name.clone().unwrap_or_else(|| i.to_string());
                let built = rule
                    .extractor()
                    .map_err(|e| e.to_string())
                    .and_then(|extractor| match extractor {
                        Extractor::Regex(pattern)
                        | Extractor::Grok {
                            expanded: Some(pattern),
                            ..
                        } => super::limits::regex(pattern).map(RuleExtractor::Text),
                        Extractor::Grok { expanded: None, .. } => {
                            Err("its grok expression did not expand".to_owned())
                        }
                        Extractor::Json(j) => {
                            JsonExtractor::new(j.for_each.as_deref(), exprs(&j.fields))
                                .map(RuleExtractor::Json)
                        }
                        Extractor::Xml(x) => {
                            let ns = x.namespaces.iter().map(|(p, u)| (p.as_str(), u.as_str()));
                            XmlExtractor::new(ns, x.for_each.as_deref(), exprs(&x.fields))
                                .map(RuleExtractor::Xml)
                        }
                        Extractor::Html(h) => {
                            HtmlExtractor::new(h.for_each.as_deref(), exprs(&h.fields))
                                .map(RuleExtractor::Html)
                        }
                        Extractor::Logfmt(l) => {
                            Ok(RuleExtractor::Logfmt(l.fields.values().cloned().collect()))
                        }
                    });
                built.map_err(|e| format!("rule {name}: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(DocumentExtractors { rules })
    }

    /// The rows each rule extracts from `text`, in rule order. A parse error (or a SOAP Fault)
    /// fails the whole document.
    pub fn extract(&self, text: &str) -> Result<Vec<Vec<Row>>, ExtractError> {
        // Every format any rule needs is parsed before a rule runs: a broken document
        // yields nothing.
        let mut parsed = Parsed::new(text);
        for rule in &self.rules {
            match rule {
                RuleExtractor::Text(_) | RuleExtractor::Logfmt(_) => {}
                RuleExtractor::Json(_) => {
                    parsed.json()?;
                }
                RuleExtractor::Xml(_) => {
                    parsed.xml()?;
                }
                RuleExtractor::Html(_) => {
                    parsed.html()?;
                }
            }
        }
        let mut out = Vec::with_capacity(self.rules.len());
        for rule in &self.rules {
            let mut rows = Vec::new();
            match rule {
                RuleExtractor::Text(re) => {
                    for caps in re.captures_iter(text) {
                        rows.push(
                            caps.iter()
                                .map(|m| m.map(|m| m.as_str().to_owned()))
                                .collect(),
                        );
                    }
                }
                RuleExtractor::Logfmt(keys) => {
                    let mut pairs = Vec::new();
                    for line in text.lines() {
                        if !crate::extract::logfmt::parse(line, &mut pairs) {
                            continue;
                        }
                        let row: Row = keys
                            .iter()
                            .map(|k| crate::extract::logfmt::value(line, &pairs, k))
                            .collect();
                        if row.iter().any(Option::is_some) {
                            rows.push(row);
                        }
                    }
                }
                RuleExtractor::Json(x) => x.extract(parsed.json()?, &mut rows),
                RuleExtractor::Xml(x) => x.extract(&parsed.xml()?.as_document(), &mut rows)?,
                RuleExtractor::Html(x) => x.extract(parsed.html()?, &mut rows),
            }
            out.push(rows);
        }
        Ok(out)
    }
}

/// A document parsed in each format asked for, once (the first call parses, later calls
/// return the same tree).
struct Parsed<'t> {
    text: &'t str,
    json: Option<serde_json::Value>,
    xml: Option<sxd_document::Package>,
    html: Option<scraper::Html>,
}

impl<'t> Parsed<'t> {
    fn new(text: &'t str) -> Parsed<'t> {
        Parsed {
            text,
            json: None,
            xml: None,
            html: None,
        }
    }

    fn json(&mut self) -> Result<&serde_json::Value, ExtractError> {
        let tree = match self.json.take() {
            Some(tree) => tree,
            None => JsonExtractor::parse(self.text)?,
        };
        Ok(self.json.insert(tree))
    }

    fn xml(&mut self) -> Result<&sxd_document::Package, ExtractError> {
        let tree = match self.xml.take() {
            Some(tree) => tree,
            None => XmlExtractor::parse(self.text)?,
        };
        Ok(self.xml.insert(tree))
    }

    fn html(&mut self) -> Result<&scraper::Html, ExtractError> {
        let tree = match self.html.take() {
            Some(tree) => tree,
            None => HtmlExtractor::parse(self.text)?,
        };
        Ok(self.html.insert(tree))
    }
}
