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
use crate::config::RuleConfig;

enum RuleExtractor {
    /// A regex over the whole document: every match.
    Text(Regex),
    Json(JsonExtractor),
    Xml(XmlExtractor),
    Html(HtmlExtractor),
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
                let built = if let Some(pattern) = rule.regex_pattern() {
                    super::limits::regex(pattern).map(RuleExtractor::Text)
                } else if let Some(j) = &rule.json {
                    JsonExtractor::new(j.for_each.as_deref(), exprs(&j.fields))
                        .map(RuleExtractor::Json)
                } else if let Some(x) = &rule.xml {
                    let ns = x.namespaces.iter().map(|(p, u)| (p.as_str(), u.as_str()));
                    XmlExtractor::new(ns, x.for_each.as_deref(), exprs(&x.fields))
                        .map(RuleExtractor::Xml)
                } else if let Some(h) = &rule.html {
                    HtmlExtractor::new(h.for_each.as_deref(), exprs(&h.fields))
                        .map(RuleExtractor::Html)
                } else {
                    Err("a rule needs an extractor".to_owned())
                };
                built.map_err(|e| format!("rule {name}: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(DocumentExtractors { rules })
    }

    /// The rows each rule extracts from `text`, in rule order. A parse error (or a SOAP Fault)
    /// fails the whole document.
    pub fn extract(&self, text: &str) -> Result<Vec<Vec<Row>>, ExtractError> {
        let mut json = None;
        let mut xml = None;
        let mut html = None;
        for rule in &self.rules {
            match rule {
                RuleExtractor::Json(_) if json.is_none() => {
                    json = Some(JsonExtractor::parse(text)?)
                }
                RuleExtractor::Xml(_) if xml.is_none() => xml = Some(XmlExtractor::parse(text)?),
                RuleExtractor::Html(_) if html.is_none() => {
                    html = Some(HtmlExtractor::parse(text)?)
                }
                _ => {}
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
                RuleExtractor::Json(x) => {
                    x.extract(json.as_ref().expect("parsed above"), &mut rows)
                }
                RuleExtractor::Xml(x) => x.extract(
                    &xml.as_ref().expect("parsed above").as_document(),
                    &mut rows,
                )?,
                RuleExtractor::Html(x) => {
                    x.extract(html.as_ref().expect("parsed above"), &mut rows)
                }
            }
            out.push(rows);
        }
        Ok(out)
    }
}
