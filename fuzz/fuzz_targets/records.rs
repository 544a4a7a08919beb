//! Lines into records: the first byte chooses the format (plain, CRI, Docker) and whether a
//! multi-line start pattern joins lines; the rest are the file's lines. Nothing panics; no
//! record outgrows its cap; the offset held is never past the line being read, and after
//! the end nothing is held. The logfmt reader runs on every line too.
#![no_main]
use libfuzzer_sys::fuzz_target;
use quarry_exporter::config::{FileFormat, FileSourceConfig, MultilineConfig};
use quarry_exporter::extract::logfmt;
use quarry_exporter::source::records::{Assembled, Assembler, Framing};

const CAP: usize = 64;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let format = [FileFormat::Plain, FileFormat::Cri, FileFormat::Docker][mode as usize % 3];
    let multiline = (mode & 4 != 0).then(|| MultilineConfig {
        start: (mode & 8 == 0).then(|| "^[A-Z]".to_owned()),
        continue_: (mode & 8 != 0).then(|| r"^\s".to_owned()),
        max_bytes: Some(CAP),
        flush_after: None,
    });
    let config = FileSourceConfig {
        format,
        multiline,
        ..Default::default()
    };
    let Some(framing) = Framing::from_config(&config, CAP) else {
        return;
    };
    let mut assembler = Assembler::new(framing);
    let mut check = |a: Assembled| {
        if let Assembled::Record { text, .. } = a {
            assert!(text.len() <= CAP, "record of {} bytes", text.len());
        }
    };
    let mut at = 0u64;
    let mut pairs = Vec::new();
    for line in text.split('\n') {
        assembler.push(line, at, &mut check);
        if let Some(held) = assembler.held_from() {
            assert!(held <= at, "held from {held}, line at {at}");
        }
        at += line.len() as u64 + 1;
        if logfmt::parse(line, &mut pairs) {
            for key in ["a", "level", "msg", ""] {
                let _ = logfmt::value(line, &pairs, key);
            }
        }
    }
    assembler.finish(&mut check);
    assert_eq!(assembler.held_from(), None);
});
