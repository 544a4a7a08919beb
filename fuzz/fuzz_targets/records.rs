//! Lines into records: the first byte chooses the format (plain, CRI, Docker) and whether a
//! multi-line start pattern joins lines; the rest are the file's bytes, split into lines by the
//! tailer's own splitter (which skips lines over the cap and repairs invalid UTF-8: a repaired
//! line may be up to three times the cap, each bad byte becoming a U+FFFD). Nothing panics; no
//! record outgrows the cap or the longest line read, whichever is longer; the offset held is never past the line being read, and
//! after the end nothing is held. The logfmt reader runs on every line too.
#![no_main]
use libfuzzer_sys::fuzz_target;
use quarry_exporter::config::{FileFormat, FileSourceConfig, MultilineConfig};
use quarry_exporter::extract::logfmt;
use quarry_exporter::source::lines::LineSplitter;
use quarry_exporter::source::records::{Assembled, Assembler, Framing};

const CAP: usize = 64;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
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
    // The longest line read so far: a whole line is a record as it is; only joins are cut.
    let longest = std::cell::Cell::new(CAP);
    let check = |a: Assembled| {
        if let Assembled::Record { text, .. } = a {
            assert!(text.len() <= longest.get(), "record of {} bytes", text.len());
        }
    };
    let mut check = check;
    // Where the line being read starts, as the tailer counts it: the end of the last line read.
    let mut at = 0u64;
    let mut pairs = Vec::new();
    let mut splitter = LineSplitter::new(CAP);
    // A final newline: the splitter holds a line until its end arrives.
    for (base, chunk) in [(0, rest), (rest.len() as u64, b"\n".as_slice())] {
        splitter.push(chunk, |line, end| {
            let end = base + end as u64;
            assert!(line.len() <= 3 * CAP, "line of {} bytes", line.len());
            longest.set(longest.get().max(line.len()));
            assembler.push(line, at, &mut check);
            if let Some(held) = assembler.held_from() {
                assert!(held <= at, "held from {held}, line at {at}");
            }
            at = end;
            if logfmt::parse(line, &mut pairs) {
                for key in ["a", "level", "msg", ""] {
                    let _ = logfmt::value(line, &pairs, key);
                }
            }
        });
    }
    assembler.finish(&mut check);
    assert_eq!(assembler.held_from(), None);
});
