//! Applying updates: a match's value read and converted, its label key built, the change
//! applied to the family; failed updates counted and kept for the landing page; page
//! sources' absent series retired, adopted after a reload, or marked unknown.

use super::cache::Remembered;
use super::trace::shown;
use super::{Fields, Op, Part, Pipeline, Scale, Update, ValueSource};
use crate::config::{Conversion, MetricKind, NoneValue};
use crate::registry::{cut_label_value, Change, KEY_SEPARATOR};
use crate::selfmetrics::{IntCounter, RuleErrorReason};
use crate::value;

impl Scale {
    pub(super) fn new(factor: f64) -> Scale {
        let inverse = 1.0 / factor;
        if inverse.abs() >= 1.0 && inverse == inverse.round() && inverse.abs() <= 1e18 {
            // 0.001 is not exactly representable; 1000 is.
            let exp = inverse.abs().log10().round();
            if 10f64.powi(exp as i32) == inverse.abs() {
                return Scale::Divide(inverse);
            }
        }
        Scale::Multiply(factor)
    }

    pub(super) fn apply(self, value: f64) -> f64 {
        match self {
            Scale::Divide(d) => value / d,
            Scale::Multiply(m) => value * m,
        }
    }

    pub(super) fn factor(self) -> f64 {
        match self {
            Scale::Divide(d) => 1.0 / d,
            Scale::Multiply(m) => m,
        }
    }
}

impl Pipeline {
    /// After a successful document: series an update set from the previous document and not
    /// from this one are removed (the item is gone), unless its rule keeps absent series.
    pub fn retire_absent(&mut self) {
        for update in self.rules.iter_mut().flat_map(|r| r.updates.iter_mut()) {
            if !matches!(update.op, Op::Set | Op::State | Op::Total) {
                continue;
            }
            if !update.keep_absent {
                for key in update.owned.difference(&update.seen_in_document) {
                    update.family.remove(key);
                }
            }
            update.owned = std::mem::take(&mut update.seen_in_document);
        }
    }

    /// Takes the series already in the families of updates `sole_feeder` says no other update
    /// feeds (kept across a reload) as set from the last document, so those the next document
    /// lacks go as they would have without the reload.
    pub fn adopt_existing(&mut self, sole_feeder: impl Fn(&str) -> bool) {
        for update in self.rules.iter_mut().flat_map(|r| r.updates.iter_mut()) {
            if matches!(update.op, Op::Set | Op::State | Op::Total)
                && sole_feeder(&update.family.name)
            {
                update.owned = update.family.keys().into_iter().collect();
            }
        }
    }

    /// While the source fails: every state series it set says `unknown` (it cannot be seen),
    /// the series of updates with `on_failure` take that value (an exporter's `*_up` at 0, made
    /// now if its labels are constant and no document set it yet);
    /// other values keep their last reading (their age is in the source's last-success time).
    pub fn mark_unknown(&mut self) {
        for update in self.rules.iter_mut().flat_map(|r| r.updates.iter_mut()) {
            if update.op == Op::State {
                for key in &update.owned {
                    update.family.set_unknown(key);
                }
            }
            if let Some(value) = update.on_failure {
                // Failing from the start: a series whose labels are all constant (an
                // exporter's `*_up`) is known without a document, so it says so at once.
                // It is then the update's own, so a later document that does not set it
                // retires it like any other series it set (it does not stay at `value`).
                if update.owned.is_empty() {
                    if let Some(key) = update.constant_key() {
                        update.family.apply(&key, Change::Set(value));
                        update.owned.insert(key.into_boxed_slice());
                    }
                }
                for key in &update.owned {
                    update.family.apply(key, Change::Set(value));
                }
            }
        }
    }
}

/// A rule's name, error counters and last failing texts (borrowed apart from its updates).
type Books<'a> = (
    &'a String,
    &'a Vec<(RuleErrorReason, IntCounter)>,
    &'a mut Vec<String>,
);

/// Counts a failed update, keeps its text for the landing page and logs it at debug.
pub(super) fn failed(
    source: &str,
    books: Books,
    update: &Update,
    fields: &Fields,
    reason: RuleErrorReason,
) {
    let (rule, errors, last_failures) = books;
    let Some(i) = errors.iter().position(|(r, _)| *r == reason) else {
        return;
    };
    errors[i].1.inc();
    let text = update.offending_text(fields, reason);
    shown(&text, &mut last_failures[i]);
    tracing::debug!(
        source,
        rule = %rule,
        metric = %update.family.name,
        reason = reason.as_str(),
        text = %last_failures[i],
        "update failed"
    );
}

impl Update {
    /// What made this update fail with `reason`: the value's text (after `map`, as it was
    /// compared), or what is missing, or the series of a duplicate.
    pub(super) fn offending_text<'a>(
        &self,
        fields: &Fields<'a>,
        reason: RuleErrorReason,
    ) -> std::borrow::Cow<'a, str> {
        use std::borrow::Cow;
        let ValueSource::Field { field, map, .. } = &self.value else {
            return Cow::Borrowed("");
        };
        let Some(text) = fields.get(*field) else {
            return Cow::Borrowed("(the field selected nothing)");
        };
        match reason {
            RuleErrorReason::UnknownState => match map.as_ref().and_then(|m| m.lookup(text)) {
                Some(mapped) if mapped != text => {
                    Cow::Owned(format!("{text} (mapped to {mapped})"))
                }
                _ => Cow::Borrowed(text),
            },
            RuleErrorReason::DuplicateSeries => {
                let mut key = Vec::new();
                self.build_key(fields, &mut key);
                let values: Vec<_> = key
                    .split(|b| *b == KEY_SEPARATOR)
                    .map(String::from_utf8_lossy)
                    .collect();
                Cow::Owned(format!("series {{{}}}", values.join(", ")))
            }
            _ => Cow::Borrowed(text),
        }
    }

    /// The update's value; `None` when it reads a value meaning "none" that `none: skip`
    /// says to skip.
    pub(super) fn value(&self, fields: &Fields) -> Result<Option<f64>, RuleErrorReason> {
        match &self.value {
            ValueSource::Constant(v) => Ok(Some(*v)),
            ValueSource::ConstantState(i) => Ok(Some(*i as f64)),
            ValueSource::Field {
                field,
                map,
                convert,
                scale,
                none,
                count,
            } => {
                let text = fields.get(*field);
                if let Some(none) = none {
                    if text.is_none_or(NoneValue::means_none) {
                        return Ok(match none {
                            NoneValue::Skip => None,
                            NoneValue::Value(v) => Some(*v),
                        });
                    }
                }
                let text = text.ok_or(RuleErrorReason::MissingField)?;
                if let Some(among) = count {
                    let n = text.chars().filter(|c| among.contains(*c)).count() as f64;
                    return Ok(Some(scale.map_or(n, |s| s.apply(n))));
                }
                let text = match map {
                    Some(m) => m.lookup(text).ok_or(RuleErrorReason::UnmappedValue)?,
                    None => text,
                };
                if self.op == Op::State {
                    let names = self.family.state_names();
                    return names
                        .iter()
                        .position(|n| n == text.trim())
                        .map(|i| Some(i as f64))
                        .ok_or(RuleErrorReason::UnknownState);
                }
                let convert = if map.is_some() {
                    Conversion::Number
                } else {
                    *convert
                };
                let v =
                    value::convert(text, convert).map_err(|_| RuleErrorReason::ValueNotANumber)?;
                Ok(Some(scale.map_or(v, |s| s.apply(v))))
            }
        }
    }

    pub(super) fn apply(
        &mut self,
        fields: &Fields,
        key: &mut Vec<u8>,
        in_document: bool,
    ) -> Result<(), RuleErrorReason> {
        let takes_document_value =
            in_document && matches!(self.op, Op::Set | Op::State | Op::Total);
        if takes_document_value {
            // The item is in the document whether or not its value reads: it stays (a state
            // it has but that cannot be read is `unknown`; a number keeps its last value).
            self.build_key(fields, key);
            if !self.seen_in_document.insert(key.as_slice().into()) {
                return Err(RuleErrorReason::DuplicateSeries);
            }
            let value = self.value(fields).and_then(|v| self.refuse_negative(v));
            let value = match value {
                Ok(Some(v)) => v,
                // `none: skip`: the item is there, its value says nothing; nothing changes.
                Ok(None) => return Ok(()),
                Err(e) => {
                    if self.op == Op::State {
                        self.family.set_unknown(key);
                    }
                    return Err(e);
                }
            };
            self.family.apply(key, self.change(value));
            return Ok(());
        }
        let Some(value) = self.value(fields).and_then(|v| self.refuse_negative(v))? else {
            return Ok(());
        };
        self.build_key(fields, key);
        // A full family drops the update; the family counts the drop.
        self.family.apply(key, self.change(value));
        Ok(())
    }

    /// [`Update::apply`] of a record's match (not a document's) with what the rule's memo
    /// remembers of this match's label texts: the series where it sat, if the family still
    /// vouches for that place, else by the key (and remembered for the next match). The same
    /// changes and counts as [`Update::apply`], in the same order.
    pub(super) fn apply_remembered(
        &mut self,
        fields: &Fields,
        key: &mut Vec<u8>,
        remembered: &mut Remembered,
    ) -> Result<(), RuleErrorReason> {
        let Some(value) = self.value(fields).and_then(|v| self.refuse_negative(v))? else {
            return Ok(());
        };
        let change = self.change(value);
        if let Some(at) = remembered.at {
            if self.family.apply_at(at, change) {
                // Building the key would have cut these values again, and counted them.
                for _ in 0..remembered.cut {
                    self.family.count_truncated();
                }
                return Ok(());
            }
        }
        let cut = self.build_key(fields, key);
        // A full family drops the update (and counts it); nothing is remembered then.
        *remembered = Remembered {
            at: self.family.apply_and_place(key, change),
            cut,
        };
        Ok(())
    }

    /// A counter does not go down: a negative increment or total is refused.
    pub(super) fn refuse_negative(
        &self,
        value: Option<f64>,
    ) -> Result<Option<f64>, RuleErrorReason> {
        if matches!(self.op, Op::Add | Op::Total)
            && self.family.kind == MetricKind::Counter
            && value.is_some_and(|v| v < 0.0)
        {
            return Err(RuleErrorReason::NegativeCounterIncrement);
        }
        Ok(value)
    }

    fn change(&self, value: f64) -> Change {
        match self.op {
            Op::Add => Change::Add(value),
            Op::Sub => Change::Sub(value),
            Op::Set => Change::Set(value),
            Op::Observe => Change::Observe(value),
            Op::State => Change::State(value as usize),
            // A value below the last is a reset upstream: passed on as one.
            Op::Total => Change::Set(value),
        }
    }

    /// The series key when every label is constant text; `None` when one reads a field.
    fn constant_key(&self) -> Option<Vec<u8>> {
        let mut key = Vec::new();
        let max = self.family.max_label_value_length();
        for (i, parts) in self.labels.iter().enumerate() {
            if i > 0 {
                key.push(KEY_SEPARATOR);
            }
            let start = key.len();
            for part in parts {
                match part {
                    Part::Literal(s) => key.extend_from_slice(s.as_bytes()),
                    Part::Field(_) => return None,
                }
            }
            cut_label_value(&mut key, start, max);
        }
        Some(key)
    }

    /// The series key of this match: label values in key order, each cut to the family's
    /// `max_label_value_length` (counted); returns how many label values were cut.
    pub(super) fn build_key(&self, fields: &Fields, key: &mut Vec<u8>) -> u32 {
        key.clear();
        let mut cut = 0;
        let max = self.family.max_label_value_length();
        for (i, parts) in self.labels.iter().enumerate() {
            if i > 0 {
                key.push(KEY_SEPARATOR);
            }
            let start = key.len();
            for part in parts {
                match part {
                    Part::Literal(s) => key.extend_from_slice(s.as_bytes()),
                    Part::Field(f) => {
                        key.extend_from_slice(fields.get(*f).unwrap_or("").as_bytes())
                    }
                }
            }
            if cut_label_value(key, start, max) {
                self.family.count_truncated();
                cut += 1;
            }
        }
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn powers_of_ten_below_one_divide_exactly_and_others_multiply() {
        let ms = Scale::new(0.001);
        assert!(matches!(ms, Scale::Divide(d) if d == 1000.0));
        assert_eq!(ms.apply(9.0), 0.009);
        assert_eq!(ms.apply(42.0), 0.042);
        assert_eq!(Scale::new(0.000001).apply(1500.0), 0.0015);
        assert_eq!(Scale::new(-0.01).apply(5.0), -0.05);
        assert!(matches!(Scale::new(1024.0), Scale::Multiply(_)));
        assert_eq!(Scale::new(1024.0).apply(2.0), 2048.0);
        assert!(matches!(Scale::new(0.25), Scale::Multiply(_)));
        assert_eq!(Scale::new(0.25).factor(), 0.25);
        assert_eq!(ms.factor(), 0.001);
    }
}
