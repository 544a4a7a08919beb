//! The socket source's reply framing on arbitrary bytes, cut into reads where the data says
//! (after each 0x00 byte). The first byte chooses the framing and the cap. Whatever the cut,
//! a framing that does not depend on where reads end (all but `prompt`) gives the answer it
//! gives to the whole at once; a complete reply lies within what was consumed, which lies
//! within what came and within the cap; a terminator ends where the reply does.
#![no_main]
use libfuzzer_sys::fuzz_target;
use quarry_exporter::source::socket::framing::{Framer, Framing, Progress};

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let max = 1 + (choice as usize >> 3) * 97;
    let framing = match choice & 7 {
        0 => Framing::Closed,
        1 => Framing::Timeout,
        2 => Framing::EmptyLine,
        3 => Framing::Terminator(b"END\r\n".to_vec()),
        4 => Framing::prompt(r"\n> ").unwrap(),
        5 => Framing::Length(rest.first().copied().unwrap_or(0) as usize * 7),
        6 => Framing::length_header(r"\$(\d+)\r\n", 2).unwrap(),
        _ => Framing::Terminator(b"\n".to_vec()),
    };
    for close in [false, true] {
        let mut framer = Framer::new(&framing, max);
        let mut received = Vec::new();
        // Asked before the first read too, as the conversation runner does (`length: 0`).
        let mut last = framer.check(&received, false);
        for chunk in rest.split_inclusive(|b| *b == 0) {
            if last != Progress::NeedMore {
                break;
            }
            received.extend_from_slice(chunk);
            last = framer.check(&received, false);
            if last != Progress::NeedMore {
                break;
            }
        }
        if last == Progress::NeedMore && close {
            last = framer.check(&received, true);
        }
        if let Progress::Complete(frame) = &last {
            assert!(frame.reply.start <= frame.reply.end);
            assert!(frame.reply.end <= frame.consumed);
            assert!(frame.consumed <= received.len());
            assert!(frame.consumed <= max);
            if let Framing::Terminator(t) = &framing {
                assert_eq!(&received[frame.reply.end..frame.consumed], &t[..]);
                assert!(!received[..frame.consumed - 1].windows(t.len()).any(|w| w == &t[..]));
            }
        }
        if !matches!(framing, Framing::Prompt(_)) {
            // The whole at once (as far as the chunked run read) says the same.
            let mut whole = Framer::new(&framing, max);
            let mut at_once = whole.check(&received, false);
            if at_once == Progress::NeedMore && close {
                at_once = whole.check(&received, true);
            }
            assert_eq!(last, at_once, "{framing:?} max {max}");
        }
        if let Some(frame) = framer.at_timeout(&received) {
            assert!(frame.consumed <= max && frame.consumed == received.len());
        }
    }
});
