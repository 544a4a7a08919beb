//! The line splitter on arbitrary chunks: the first byte is the line cap, the rest is cut into
//! chunks at the positions the data chooses (after each 0x00 byte). Every complete line comes
//! out once, in order, unless it is longer than the cap; the counts add up.
#![no_main]
use libfuzzer_sys::fuzz_target;
use quarry_exporter::source::lines::LineSplitter;

fuzz_target!(|data: &[u8]| {
    let Some((&cap, rest)) = data.split_first() else {
        return;
    };
    let cap = cap as usize + 1;
    // Chunk boundaries from the data itself: cut after every 0x00 byte.
    let mut splitter = LineSplitter::new(cap);
    let mut got: Vec<String> = Vec::new();
    let mut stats_lines = 0;
    let mut too_long = 0;
    for chunk in rest.split_inclusive(|b| *b == 0) {
        let st = splitter.push(chunk, |l, end| {
            // Each line comes with the end of its newline in the chunk.
            assert_eq!(chunk[end - 1], b'\n', "end {end} of {l:?}");
            got.push(l.to_owned())
        });
        stats_lines += st.lines;
        too_long += st.too_long;
    }
    // What a plain split says: complete lines (ending in '\n'), without a trailing '\r'.
    let mut complete: Vec<&[u8]> = rest.split(|b| *b == b'\n').collect();
    // The part after the last newline is not a complete line; it counts as too long as soon
    // as it is longer than the cap, complete or not.
    let unfinished = complete.pop().unwrap_or_default();
    assert_eq!(stats_lines as usize, complete.len());
    let expected: Vec<String> = complete
        .iter()
        .filter(|l| l.len() <= cap)
        .map(|l| String::from_utf8_lossy(l.strip_suffix(b"\r").unwrap_or(l)).into_owned())
        .collect();
    assert_eq!(got, expected);
    assert_eq!(
        too_long as usize,
        complete.len() - expected.len() + usize::from(unfinished.len() > cap)
    );
});
