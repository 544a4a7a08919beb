//! `xml:` — XPath 1.0 (the sxd-xpath crate) over XML and SOAP documents.
//!
//! Expressions use the prefixes of the rule's namespace map, so documents with a default
//! namespace (and every SOAP body) can be queried. `for_each` selects the nodes to iterate
//! (default: the document once); fields are relative to the current node, and absolute paths
//! (`/...`) start at the document root. A SOAP envelope whose body holds a Fault is an error
//! carrying the fault's reason, never a document with no matches.
//!
//! sxd-xpath is XPath 1.0 in pure Rust and stable, though no longer developed. Its compiled
//! expressions are not `Send`: an extractor is built on the thread that runs it (the page
//! source's document worker) and compiles each expression once there. Every expression is
//! checked against [`super::limits`] before the parser sees it.

use sxd_document::dom::Document;
use sxd_document::Package;
use sxd_xpath::nodeset::Node;
use sxd_xpath::{Context, Factory, Value};

use super::{normalize_text, ExtractError, Row};

/// A compiled `xml:` rule (not `Send`: see the module documentation).
pub struct XmlExtractor {
    namespaces: Vec<(String, String)>,
    for_each: Option<(String, sxd_xpath::XPath)>,
    fields: Vec<sxd_xpath::XPath>,
}

fn compile<'a>(
    expr: &str,
    declared: impl IntoIterator<Item = &'a str> + Clone,
) -> Result<sxd_xpath::XPath, String> {
    super::limits::check_expression(expr).map_err(|e| format!("XPath: {e}"))?;
    if let Some(prefix) = prefixes(expr)
        .into_iter()
        .find(|p| !declared.clone().into_iter().any(|d| d == *p))
    {
        // sxd-xpath panics on an undeclared prefix when it evaluates (found by fuzzing).
        let list: Vec<&str> = declared.into_iter().collect();
        return Err(format!(
            "XPath {expr:?} uses the prefix `{prefix}`, which `namespaces` does not declare ({})",
            if list.is_empty() {
                "it declares none".to_owned()
            } else {
                format!("it declares {}", list.join(", "))
            }
        ));
    }
    Factory::new()
        .build(expr)
        .map_err(|e| {
            format!(
                "invalid XPath {expr:?}: {}",
                super::readable_parse_error(&format!("{e:?}"))
            )
        })?
        .ok_or_else(|| format!("empty XPath {expr:?}"))
}

/// The namespace prefixes an XPath expression uses (`s:` in `/s:Envelope`, not the axis in
/// `child::`), outside string literals.
fn prefixes(expr: &str) -> Vec<&str> {
    let b = expr.as_bytes();
    let name_start = |c: u8| c.is_ascii_alphabetic() || c == b'_' || c >= 0x80;
    let name_char = |c: u8| name_start(c) || c.is_ascii_digit() || c == b'-' || c == b'.';
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'"' || c == b'\'' {
            // A string literal: to its closing quote.
            i += 1;
            while i < b.len() && b[i] != c {
                i += 1;
            }
            i += 1;
        } else if name_start(c) {
            let start = i;
            while i < b.len() && name_char(b[i]) {
                i += 1;
            }
            let follows_qname =
                i + 1 < b.len() && b[i] == b':' && (name_start(b[i + 1]) || b[i + 1] == b'*');
            if follows_qname {
                out.push(&expr[start..i]);
                i += 1; // the local part is read as the next name
                while i < b.len() && name_char(b[i]) {
                    i += 1;
                }
            } else if b.get(i) == Some(&b':') && b.get(i + 1) == Some(&b':') {
                i += 2; // an axis
            }
        } else if c.is_ascii_digit() {
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    out
}

impl XmlExtractor {
    /// Checks every expression (prefixes must be declared) and keeps them with the namespace
    /// map.
    pub fn new<'a>(
        namespaces: impl IntoIterator<Item = (&'a str, &'a str)>,
        for_each: Option<&str>,
        fields: impl IntoIterator<Item = &'a str>,
    ) -> Result<XmlExtractor, String> {
        let namespaces: Vec<(String, String)> = namespaces
            .into_iter()
            .map(|(p, u)| (p.to_owned(), u.to_owned()))
            .collect();
        let declared = namespaces.iter().map(|(p, _)| p.as_str());
        Ok(XmlExtractor {
            for_each: for_each
                .map(|e| compile(e, declared.clone()).map(|x| (e.to_owned(), x)))
                .transpose()?,
            fields: fields
                .into_iter()
                .map(|f| compile(f, declared.clone()))
                .collect::<Result<_, _>>()?,
            namespaces,
        })
    }

    /// Checks one expression against the declared namespace prefixes (config validation).
    pub fn check<'a>(
        expr: &str,
        declared: impl IntoIterator<Item = &'a str> + Clone,
    ) -> Result<(), String> {
        compile(expr, declared).map(|_| ())
    }

    /// Parses `text`; a SOAP Fault is reported as [`ExtractError::SoapFault`]. Documents
    /// nested deeper than [`super::limits::MAX_MARKUP_DEPTH`] are refused unparsed.
    pub fn parse(text: &str) -> Result<Package, ExtractError> {
        if super::limits::markup_too_deep(text, false) {
            return Err(ExtractError::Parse(format!(
                "elements nest deeper than {} levels",
                super::limits::MAX_MARKUP_DEPTH
            )));
        }
        let package = sxd_document::parser::parse(text)
            .map_err(|e| ExtractError::Parse(format!("invalid XML: {e}")))?;
        if let Some(reason) = soap_fault(&package.as_document()) {
            return Err(ExtractError::SoapFault(reason));
        }
        Ok(package)
    }

    /// One row per selected node.
    pub fn extract(&self, doc: &Document, rows: &mut Vec<Row>) -> Result<(), ExtractError> {
        let mut context = Context::new();
        for (prefix, uri) in &self.namespaces {
            context.set_namespace(prefix, uri);
        }
        let fields = &self.fields;
        let nodes: Vec<Node> = match &self.for_each {
            None => vec![doc.root().into()],
            Some((e, x)) => match x
                .evaluate(&context, doc.root())
                .map_err(|e| ExtractError::Query(e.to_string()))?
            {
                Value::Nodeset(set) => set.document_order(),
                other => {
                    return Err(ExtractError::Query(format!(
                        "for_each {e:?} selects a {}, not nodes",
                        kind(&other)
                    )))
                }
            },
        };
        for node in nodes {
            let mut row = Row::with_capacity(fields.len());
            for f in fields {
                let value = f
                    .evaluate(&context, node)
                    .map_err(|e| ExtractError::Query(e.to_string()))?;
                row.push(match value {
                    Value::Nodeset(set) => set
                        .document_order_first()
                        .map(|n| normalize_text(&n.string_value())),
                    Value::String(s) => Some(normalize_text(&s)),
                    Value::Number(n) => Some(n.to_string()),
                    Value::Boolean(b) => Some(b.to_string()),
                });
            }
            rows.push(row);
        }
        Ok(())
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Nodeset(_) => "node set",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Boolean(_) => "boolean",
    }
}

/// The reason of a SOAP 1.1 or 1.2 Fault, if the document is one.
fn soap_fault(doc: &Document) -> Option<String> {
    let expr = "/*[local-name()='Envelope']/*[local-name()='Body']/*[local-name()='Fault']";
    let context = Context::new();
    let fault = match compile(expr, [])
        .ok()?
        .evaluate(&context, doc.root())
        .ok()?
    {
        Value::Nodeset(set) => set.document_order_first()?,
        _ => return None,
    };
    let reason = "string((*[local-name()='faultstring'] | *[local-name()='Reason']/*[local-name()='Text'])[1])";
    let text = match compile(reason, []).ok()?.evaluate(&context, fault).ok()? {
        Value::String(s) => normalize_text(&s),
        _ => String::new(),
    };
    Some(if text.is_empty() {
        "(no reason given)".into()
    } else {
        text
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_prefix_must_be_declared() {
        assert_eq!(prefixes("/s:Envelope/s:Body/b:Queue"), ["s", "s", "b"]);
        assert_eq!(prefixes("child::s:item[@x:id = 'a:b']/text()"), ["s", "x"]);
        assert_eq!(prefixes("//*[local-name()='Fault'] | ns:*"), ["ns"]);
        assert_eq!(
            prefixes("count(item) > 1.5 and \"q:r\" != 'z:y'"),
            Vec::<&str>::new()
        );
        assert_eq!(prefixes("ancestor-or-self::node()"), Vec::<&str>::new());
        // Found by fuzzing: sxd-xpath panics evaluating an undeclared prefix; refused here.
        let e = XmlExtractor::new([("s", "urn:s")], Some("/ss:status/s:component"), ["@name"])
            .err()
            .unwrap();
        assert!(e.contains("prefix `ss`") && e.contains("declares s"), "{e}");
        let e = XmlExtractor::check("x:a", []).unwrap_err();
        assert!(e.contains("declares none"), "{e}");
        let x = XmlExtractor::new([("s", "urn:s")], Some("/s:status"), ["@name"]).unwrap();
        let doc = XmlExtractor::parse(r#"<status xmlns="urn:s" name="a"/>"#).unwrap();
        let mut rows = Vec::new();
        x.extract(&doc.as_document(), &mut rows).unwrap();
        assert_eq!(rows, vec![vec![Some("a".to_owned())]]);
    }

    const STATUS: &str = r#"<?xml version="1.0"?>
      <status xmlns="urn:example:status" generated="2026-11-26T10:00:00Z">
        <component name="db"><state>OK</state><latency unit="ms">4</latency></component>
        <component name="queue"><state>WARN</state><latency unit="ms">250</latency></component>
      </status>"#;

    #[test]
    fn default_namespace_with_a_prefix_map() {
        let x = XmlExtractor::new(
            [("s", "urn:example:status")],
            Some("/s:status/s:component"),
            [
                "@name",
                "s:state",
                "s:latency",
                "/s:status/@generated",
                "count(s:*)",
            ],
        )
        .unwrap();
        let pkg = XmlExtractor::parse(STATUS).unwrap();
        let mut rows = Vec::new();
        x.extract(&pkg.as_document(), &mut rows).unwrap();
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(
            rows[0],
            vec![s("db"), s("OK"), s("4"), s("2026-11-26T10:00:00Z"), s("2")]
        );
        assert_eq!(rows[1][1], s("WARN"));
    }

    #[test]
    fn soap_faults_are_errors_with_their_reason() {
        let fault = r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>
            <soap:Fault><faultcode>soap:Client</faultcode><faultstring>Missing SOAPAction</faultstring></soap:Fault>
            </soap:Body></soap:Envelope>"#;
        assert_eq!(
            XmlExtractor::parse(fault).err(),
            Some(ExtractError::SoapFault("Missing SOAPAction".into()))
        );
        let fault12 = r#"<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body><env:Fault>
            <env:Code><env:Value>env:Sender</env:Value></env:Code><env:Reason><env:Text xml:lang="en">Bad request</env:Text></env:Reason>
            </env:Fault></env:Body></env:Envelope>"#;
        assert_eq!(
            XmlExtractor::parse(fault12).err(),
            Some(ExtractError::SoapFault("Bad request".into()))
        );
        assert!(matches!(
            XmlExtractor::parse("<a><b></a>"),
            Err(ExtractError::Parse(_))
        ));
        assert!(XmlExtractor::new([], Some("//["), ["x"]).is_err());
    }
}
