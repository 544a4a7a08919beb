//! Extractors: a document (an HTTP body, a command's stdout, a status file) in, matches out.
//! Each match is a row of field values, in the order of the rule's field names. Pure: no I/O,
//! no clock, no metrics; each is unit-tested from a string.

pub mod document;
pub mod html;
pub mod json;
pub mod json_record;
pub mod limits;
pub mod logfmt;
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

/// A parser's error name made readable, with a hint for the common ones:
/// `UnexpectedSelectorParseError(DanglingCombinator)` → `dangling combinator: a combinator
/// (`>`, `+`, `~`) needs a selector on each side`. Parsers that name their errors in Rust's
/// debug form (sxd-xpath, selectors) otherwise print `CamelCase` names.
pub fn readable_parse_error(debug: &str) -> String {
    // The error's kind: the first name inside the parser's wrappers
    // (`UnexpectedSelectorParseError(NoQualifiedNameInAttributeSelector(SquareBracketBlock))`
    // → `NoQualifiedNameInAttributeSelector`, not the token it met).
    let mut inner = debug.trim();
    for wrapper in [
        "UnexpectedSelectorParseError(",
        "ParserError(",
        "TokenizerError(",
        "Parser(",
        "Tokenizer(",
    ] {
        if let Some(rest) = inner.strip_prefix(wrapper) {
            inner = rest;
        }
    }
    let name: String = inner.chars().take_while(|c| c.is_alphanumeric()).collect();
    let mut words = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            words.push(' ');
        }
        words.extend(c.to_lowercase());
    }
    let hint = match name.as_str() {
        "NoQualifiedNameInAttributeSelector" => {
            "an attribute selector needs a name: `[name]`, `[name=value]`"
        }
        "DanglingCombinator" => {
            "a combinator (`>`, `+`, `~`, a space) needs a selector on each side"
        }
        "EmptySelector" => "the selector is empty",
        "RightHandSideExpressionMissing" => {
            "an operator needs a value on its right, e.g. `[@name='orders']`"
        }
        "LeftHandSideExpressionMissing" => "an operator needs a value on its left",
        "TrailingSlash" => "a path cannot end in `/`: write `depth` (its text) or `depth/@unit`",
        "EmptyPredicate" => "`[]` needs a condition inside, e.g. `[@name='orders']` or `[1]`",
        "UnclosedPredicate" | "MissingRightBracket" => "a `[` is not closed",
        "MismatchedQuoteCharacters" => "a quote is not closed",
        "ExtraUnparsedTokens" => "something follows the end of the expression",
        "UnexpectedToken" => "a character is not allowed here",
        "EmptyNamespaceIfUnprefixed" | "MissingLocalName" => "a name is missing after `:`",
        _ => "",
    };
    if words.is_empty() {
        return debug.to_owned();
    }
    if hint.is_empty() {
        words
    } else {
        format!("{words}: {hint}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_error_names_read_as_words_with_hints() {
        assert_eq!(
            readable_parse_error("ParserError(TrailingSlash)"),
            "trailing slash: a path cannot end in `/`: write `depth` (its text) or `depth/@unit`"
        );
        assert!(readable_parse_error(
            "UnexpectedSelectorParseError(NoQualifiedNameInAttributeSelector(SquareBracketBlock))"
        )
        .starts_with(
            "no qualified name in attribute selector: an attribute selector needs a name"
        ));
        assert_eq!(
            readable_parse_error("TokenizerError(UnknownThing)"),
            "unknown thing"
        );
    }
}
