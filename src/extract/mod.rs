//! Extractors: a document (an HTTP body, a command's stdout, a status file) in, matches out.
//! Each match is a row of field values, in the order of the rule's field names. Pure: no I/O,
//! no clock, no metrics; each is unit-tested from a string.

pub mod document;
pub mod html;
pub mod json;
pub mod limits;
pub mod xml;

/// One match: a value per field (in the rule's field order); `None` when a field selected
/// nothing.
pub type Row = Vec<Option<String>>;

/// Why a document yielded nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtractError {
    /// The document is not valid for the extractor's format.
    Parse(String),
    /// A SOAP response carrying a Fault, with its reason.
    SoapFault(String),
    /// A query could not be evaluated on this document.
    Query(String),
}

impl std::fmt::Display for ExtractError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExtractError::Parse(m) => write!(f, "cannot parse document: {m}"),
            ExtractError::SoapFault(m) => write!(f, "SOAP Fault: {m}"),
            ExtractError::Query(m) => write!(f, "query failed: {m}"),
        }
    }
}

/// Collapses runs of whitespace to one space and trims: what a person reads in a cell.
pub fn normalize_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}
