//! Runs a socket conversation on a connected stream: each step writes its request, then reads
//! until its [`Framer`] says the reply is complete, fails, or the step's timeout passes.
//!
//! Generic over the stream (TCP, Unix, either under TLS, or an in-memory duplex in tests).
//! Reads are bounded by what is left of the conversation's byte cap, so a huge reply costs at
//! most the cap. Bytes past a reply's end stay for the next step (pipelined replies).
//! Cancellation is dropping the future: nothing here outlives it.

use std::time::Duration;

use regex::bytes::Regex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::framing::{FrameError, Framer, Framing, Progress};
use super::request::{Request, SecretValues};
use crate::selfmetrics::SourceErrorReason;
use crate::source::fetch::{fail, BodyRoom, FetchError};

/// The most one read asks for.
const READ_CHUNK: usize = 64 << 10;

/// One step of a conversation, compiled.
#[derive(Debug, Clone)]
pub struct Step {
    /// What it sends first, if anything.
    pub request: Option<Request>,
    /// Where its reply ends.
    pub framing: Framing,
    /// Its own limit (required by [`Framing::Timeout`]); the conversation's bounds it anyway.
    pub timeout: Option<Duration>,
    /// What its reply must match.
    pub expect: Option<Regex>,
    /// Its reply is part of the document.
    pub document: bool,
}

impl Step {
    /// How the step is named in messages: its number and its request (secrets as `${name}`).
    fn named(&self, index: usize) -> String {
        match &self.request {
            Some(request) => format!("step {} ({})", index + 1, request.shown()),
            None => format!("step {}", index + 1),
        }
    }
}

/// What a conversation brought back.
#[derive(Debug)]
pub struct Transcript {
    /// The replies of the document steps, in order.
    pub document: Vec<u8>,
    /// Every byte received.
    pub received: usize,
}

/// The limits of a conversation.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Everything received, all replies together.
    pub max_bytes: usize,
    /// When the whole conversation must be done (the source's timeout).
    pub deadline: tokio::time::Instant,
    /// The source's timeout, for messages.
    pub timeout: Duration,
}

/// Runs `steps` on `stream` within `limits`. Reply bytes in an error's message are shown
/// with `secrets` redacted before they are cut; the caller redacts the whole message again.
///
/// What it holds (the replies not yet taken and the document) is accounted in `budget` as it
/// grows, as an HTTP body is: a probe's conversation counts against the budget all probes
/// share while it runs, not only once it is done.
pub async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    steps: &[Step],
    secrets: &SecretValues,
    limits: Limits,
    budget: &mut impl BodyRoom,
) -> Result<Transcript, FetchError> {
    let max_bytes = limits.max_bytes;
    let document_steps = steps.iter().filter(|s| s.document).count();
    let mut pending: Vec<u8> = Vec::new();
    let mut used = 0usize;
    let mut closed = false;
    let mut document = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK.min(max_bytes.saturating_add(1))];
    for (index, step) in steps.iter().enumerate() {
        // The step's own limit, cut to the conversation's: a step with a timeout of its own
        // (`until: timeout` ends its reply there) keeps it when it reaches past the source's
        // timeout, so `timeout: 2s` on both reads for what time is left instead of failing.
        let own = step
            .timeout
            .map(|t| (tokio::time::Instant::now() + t).min(limits.deadline));
        let deadline = own.unwrap_or(limits.deadline);
        let within = match own {
            Some(_) => format!("{:?}", step.timeout.unwrap_or_default()),
            None => format!("the source's timeout of {:?}", limits.timeout),
        };
        if let Some(request) = &step.request {
            if closed {
                return Err(fail(
                    SourceErrorReason::ClosedEarly,
                    format!(
                        "{}: the connection was closed before the request could be sent",
                        step.named(index)
                    ),
                ));
            }
            let bytes = request.render(secrets);
            let write = async {
                stream.write_all(&bytes).await?;
                stream.flush().await
            };
            match tokio::time::timeout_at(deadline, write).await {
                Err(_) => {
                    return Err(fail(
                        SourceErrorReason::Timeout,
                        format!(
                            "{}: the request could not be sent within {within}",
                            step.named(index),
                        ),
                    ))
                }
                Ok(Err(e)) => return Err(write_failure(e, &step.named(index))),
                Ok(Ok(())) => {}
            }
        }
        let room = max_bytes - used;
        let mut framer = Framer::new(&step.framing, room);
        let frame = loop {
            match framer.check(&pending, closed) {
                Progress::Complete(frame) => break frame,
                Progress::Failed(e) => {
                    return Err(frame_failure(e, &step.named(index), max_bytes, secrets))
                }
                Progress::NeedMore => {}
            }
            // One byte past the cap is enough to know it is past.
            let want = room
                .saturating_add(1)
                .saturating_sub(pending.len())
                .clamp(1, chunk.len());
            let read = stream.read(&mut chunk[..want]);
            let read = match tokio::time::timeout_at(deadline, read).await {
                Ok(read) => read,
                // Only the step's own timeout ends a reply; the conversation's fails it.
                Err(_) => match framer.at_timeout(&pending).filter(|_| own.is_some()) {
                    Some(frame) => break frame,
                    None => {
                        return Err(fail(
                            SourceErrorReason::Timeout,
                            format!(
                                "{}: no complete reply within {within} ({} bytes received{})",
                                step.named(index),
                                pending.len(),
                                started(&pending, secrets),
                            ),
                        ))
                    }
                },
            };
            match read {
                Ok(0) => closed = true,
                Ok(n) => {
                    budget.make_room(document.len() + pending.len() + n).await?;
                    pending.extend_from_slice(&chunk[..n]);
                }
                Err(e) => {
                    return Err(fail(
                        SourceErrorReason::Read,
                        format!("{}: reading the reply failed: {e}", step.named(index)),
                    ))
                }
            }
        };
        let reply = &pending[frame.reply.clone()];
        if let Some(expect) = &step.expect {
            if !expect.is_match(reply) {
                return Err(fail(
                    SourceErrorReason::UnexpectedReply,
                    format!(
                        "{}: the reply does not match expect {:?}: {}",
                        step.named(index),
                        expect.as_str(),
                        secrets.shown(reply)
                    ),
                ));
            }
        }
        let last = index + 1 == steps.len();
        if step.document || (document_steps == 0 && last) {
            document.extend_from_slice(reply);
        }
        used += frame.consumed;
        pending.drain(..frame.consumed);
    }
    Ok(Transcript {
        document,
        received: used + pending.len(),
    })
}

/// `, starting "…"` for a timeout's message when something came.
fn started(pending: &[u8], secrets: &SecretValues) -> String {
    if pending.is_empty() {
        String::new()
    } else {
        format!(", starting {}", secrets.shown(pending))
    }
}

fn frame_failure(
    e: FrameError,
    step: &str,
    max_bytes: usize,
    secrets: &SecretValues,
) -> FetchError {
    match e {
        FrameError::ClosedEarly { .. } => fail(SourceErrorReason::ClosedEarly, format!("{step}: {e}")),
        FrameError::TooLarge { .. } => fail(
            SourceErrorReason::TooLarge,
            format!("{step}: the conversation received more than its cap of {max_bytes} bytes (max_bytes)"),
        ),
        FrameError::BadHeader { start } => fail(
            SourceErrorReason::UnexpectedReply,
            format!(
                "{step}: the reply does not start with its length header: {}",
                secrets.shown(&start)
            ),
        ),
    }
}

fn write_failure(e: std::io::Error, step: &str) -> FetchError {
    use std::io::ErrorKind;
    let reason = match e.kind() {
        ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => {
            SourceErrorReason::ClosedEarly
        }
        _ => SourceErrorReason::Read,
    };
    fail(reason, format!("{step}: sending the request failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::fetch::Unaccounted;

    fn step(send: Option<&str>, framing: Framing) -> Step {
        Step {
            request: send.map(|s| Request::parse(s, &[]).unwrap()),
            framing,
            timeout: None,
            expect: None,
            document: false,
        }
    }

    /// Runs `steps` against a peer that answers with `script`: for each request it reads
    /// (up to a newline) it writes the next reply; then it closes if `close`.
    async fn against(
        steps: &[Step],
        replies: &[&'static [u8]],
        close: bool,
        max: usize,
    ) -> Result<Transcript, FetchError> {
        let (mut ours, mut theirs) = tokio::io::duplex(1 << 16);
        let replies: Vec<&'static [u8]> = replies.to_vec();
        let peer = tokio::spawn(async move {
            for reply in replies {
                let mut byte = [0u8; 1];
                // Wait for a request line, if the conversation sends one.
                loop {
                    match theirs.read(&mut byte).await {
                        Ok(1) if byte[0] != b'\n' => continue,
                        _ => break,
                    }
                }
                let _ = theirs.write_all(reply).await;
            }
            if !close {
                std::future::pending::<()>().await;
            }
        });
        let limits = Limits {
            max_bytes: max,
            deadline: tokio::time::Instant::now() + Duration::from_secs(10),
            timeout: Duration::from_secs(10),
        };
        let result = converse(
            &mut ours,
            steps,
            &SecretValues::default(),
            limits,
            &mut Unaccounted,
        )
        .await;
        peer.abort();
        result
    }

    #[tokio::test]
    async fn the_last_reply_is_the_document_unless_steps_say_otherwise() {
        let steps = [
            step(Some("AUTH x\n"), Framing::Terminator(b"\r\n".to_vec())),
            step(Some("INFO\n"), Framing::Terminator(b"END\r\n".to_vec())),
        ];
        let t = against(&steps, &[b"+OK\r\n", b"a:1\r\nEND\r\n"], false, 1000)
            .await
            .unwrap();
        assert_eq!(t.document, b"a:1\r\n");
        assert_eq!(t.received, 15);
        let mut both = steps.clone();
        both[0].document = true;
        both[1].document = true;
        let t = against(&both, &[b"+OK\r\n", b"a:1\r\nEND\r\n"], false, 1000)
            .await
            .unwrap();
        assert_eq!(t.document, b"+OKa:1\r\n");
    }

    /// A budget that records the sizes asked for and refuses past `limit`.
    struct Budget {
        asked: Vec<usize>,
        limit: usize,
    }

    impl BodyRoom for Budget {
        async fn make_room(&mut self, total: usize) -> Result<(), FetchError> {
            self.asked.push(total);
            if total > self.limit {
                return Err(fail(
                    SourceErrorReason::NoSlot,
                    format!("no room for {total}"),
                ));
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn what_a_conversation_holds_is_accounted_as_it_comes() {
        let (mut ours, mut theirs) = tokio::io::duplex(1 << 16);
        let reply = vec![b'a'; 100_000];
        let peer = tokio::spawn(async move {
            let _ = theirs.write_all(&reply).await;
            let _ = theirs.shutdown().await;
            std::future::pending::<()>().await;
        });
        let limits = Limits {
            max_bytes: 1 << 20,
            deadline: tokio::time::Instant::now() + Duration::from_secs(10),
            timeout: Duration::from_secs(10),
        };
        let steps = [step(None, Framing::Closed)];
        let mut budget = Budget {
            asked: Vec::new(),
            limit: 50_000,
        };
        let e = converse(
            &mut ours,
            &steps,
            &SecretValues::default(),
            limits,
            &mut budget,
        )
        .await
        .unwrap_err();
        peer.abort();
        // Refused while the reply came, not after all of it was held.
        assert_eq!(e.reason, SourceErrorReason::NoSlot);
        assert!(
            budget.asked.windows(2).all(|w| w[0] < w[1]),
            "{:?}",
            budget.asked
        );
        assert!(
            *budget.asked.last().unwrap() <= 50_000 + READ_CHUNK,
            "{:?}",
            budget.asked
        );
    }

    #[tokio::test]
    async fn the_largest_cap_there_is_does_not_overflow() {
        let steps = [step(
            Some("INFO\n"),
            Framing::Terminator(b"END\r\n".to_vec()),
        )];
        let t = against(&steps, &[b"a:1\r\nEND\r\n"], false, usize::MAX)
            .await
            .unwrap();
        assert_eq!(t.document, b"a:1\r\n");
    }

    #[tokio::test]
    async fn bytes_past_a_reply_belong_to_the_next_step() {
        // Both replies in one write: the second step reads nothing more.
        let steps = [
            step(Some("two\n"), Framing::Terminator(b"\n".to_vec())),
            step(None, Framing::Terminator(b"\n".to_vec())),
        ];
        let t = against(&steps, &[b"one\ntwo\n"], false, 1000)
            .await
            .unwrap();
        assert_eq!(t.document, b"two");
    }

    #[tokio::test]
    async fn an_unexpected_reply_is_its_own_reason_and_shows_the_reply() {
        let mut auth = step(None, Framing::Terminator(b"\r\n".to_vec()));
        auth.request = Some(Request::parse("AUTH ${p}\\n", &["p".to_owned()]).unwrap());
        auth.expect = Some(Regex::new(r"^\+OK").unwrap());
        let e = against(&[auth], &[b"-WRONGPASS invalid password\r\n"], false, 1000)
            .await
            .unwrap_err();
        assert_eq!(e.reason, SourceErrorReason::UnexpectedReply);
        assert_eq!(
            e.message,
            r#"step 1 (AUTH ${p}\n): the reply does not match expect "^\\+OK": "-WRONGPASS invalid password""#
        );
    }

    #[tokio::test]
    async fn a_close_before_a_request_or_a_reply_end_is_closed_early() {
        let steps = [step(
            Some("stats\n"),
            Framing::Terminator(b"END\r\n".to_vec()),
        )];
        let e = against(&steps, &[b"STAT a 1\r\n"], true, 1000)
            .await
            .unwrap_err();
        assert_eq!(e.reason, SourceErrorReason::ClosedEarly);
        let steps = [
            step(Some("a\n"), Framing::Closed),
            step(Some("b\n"), Framing::Closed),
        ];
        let e = against(&steps, &[b"x"], true, 1000).await.unwrap_err();
        assert_eq!(e.reason, SourceErrorReason::ClosedEarly);
        assert!(e.message.starts_with("step 2 (b\\n)"), "{}", e.message);
    }

    #[tokio::test]
    async fn the_cap_counts_every_reply_together() {
        let steps = [
            step(Some("a\n"), Framing::Terminator(b"\n".to_vec())),
            step(Some("b\n"), Framing::Terminator(b"\n".to_vec())),
        ];
        // 6 + 6 bytes: each fits a cap of 10, both do not.
        let e = against(&steps, &[b"12345\n", b"12345\n"], false, 10)
            .await
            .unwrap_err();
        assert_eq!(e.reason, SourceErrorReason::TooLarge);
        assert!(e.message.contains("cap of 10 bytes"), "{}", e.message);
        assert!(against(&steps, &[b"12345\n", b"1234\n"], false, 11)
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn a_timeout_reply_longer_than_the_source_allows_ends_at_the_source_timeout() {
        let (mut ours, mut theirs) = tokio::io::duplex(1 << 16);
        let peer = tokio::spawn(async move {
            let _ = theirs.write_all(b"partial").await;
            std::future::pending::<()>().await;
        });
        let mut drip = step(None, Framing::Timeout);
        drip.timeout = Some(Duration::from_secs(20));
        let limits = Limits {
            max_bytes: 1000,
            deadline: tokio::time::Instant::now() + Duration::from_millis(300),
            timeout: Duration::from_millis(300),
        };
        let t = converse(
            &mut ours,
            &[drip],
            &SecretValues::default(),
            limits,
            &mut Unaccounted,
        )
        .await
        .unwrap();
        peer.abort();
        assert_eq!(t.document, b"partial");
    }

    #[tokio::test]
    async fn a_step_timeout_ends_a_timeout_reply_and_fails_any_other() {
        let mut drip = step(Some("go\n"), Framing::Timeout);
        drip.timeout = Some(Duration::from_millis(200));
        let t = against(&[drip.clone()], &[b"partial"], false, 1000)
            .await
            .unwrap();
        assert_eq!(t.document, b"partial");
        drip.framing = Framing::EmptyLine;
        let e = against(&[drip], &[b"partial"], false, 1000)
            .await
            .unwrap_err();
        assert_eq!(e.reason, SourceErrorReason::Timeout);
        assert_eq!(
            e.message,
            "step 1 (go\\n): no complete reply within 200ms (7 bytes received, starting \"partial\")"
        );
    }
}
