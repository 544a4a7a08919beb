//! A page source's document worker: the thread that parses its documents and runs its
//! extractors, so that a fetch can always be abandoned.
//!
//! Parsing is CPU work that cannot be interrupted, so it never runs on the runtime: the page
//! task hands the document to its worker and waits at most the source's timeout. A document
//! that takes longer fails with `timeout`; the worker finishes it in the background and takes
//! no new document until then (a fetch meanwhile fails at once instead of queueing). So a
//! reload or SIGTERM never waits for a parse, and a pathological page costs one thread's time,
//! not the exporter's responsiveness. The extractors are compiled once, on this thread (XPath
//! expressions are not `Send`), with a stack that does not depend on the runtime's.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use crate::config::RuleConfig;
use crate::extract::document::DocumentExtractors;
use crate::extract::{ExtractError, Row};

/// Stack of a document worker. Expressions and documents are depth-limited
/// ([`crate::extract::limits`]), so this is headroom, not a requirement.
const WORKER_STACK: usize = 16 << 20;

type Reply = tokio::sync::oneshot::Sender<Result<Vec<Vec<Row>>, ExtractError>>;

/// Why a document yielded no rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerError {
    /// The document did not parse, or a SOAP Fault.
    Extract(ExtractError),
    /// The budget ran out; the worker finishes the document in the background.
    Timeout(Duration),
    /// The previous document is still being parsed.
    Busy,
}

/// The handle to a running worker; the thread ends when this is dropped (after its current
/// document, if any).
pub struct DocumentWorker {
    jobs: mpsc::Sender<(String, Reply)>,
    busy: Arc<AtomicBool>,
}

impl DocumentWorker {
    /// Starts the worker of source `name` and compiles `rules`' extractors on it.
    pub fn start(name: &str, rules: Vec<RuleConfig>) -> anyhow::Result<DocumentWorker> {
        let (jobs, inbox) = mpsc::channel::<(String, Reply)>();
        let (built_tx, built_rx) = mpsc::sync_channel(1);
        let busy = Arc::new(AtomicBool::new(false));
        let worker_busy = busy.clone();
        std::thread::Builder::new()
            .name(format!("parse-{name}"))
            .stack_size(WORKER_STACK)
            .spawn(move || {
                let extractors = match DocumentExtractors::build(&rules) {
                    Ok(x) => {
                        let _ = built_tx.send(Ok(()));
                        x
                    }
                    Err(e) => {
                        let _ = built_tx.send(Err(e));
                        return;
                    }
                };
                for (text, reply) in inbox {
                    let rows = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        extractors.extract(&text)
                    }))
                    .unwrap_or_else(|_| {
                        Err(ExtractError::Parse(
                            "the parser failed (a bug: please report it)".into(),
                        ))
                    });
                    drop(text);
                    worker_busy.store(false, Ordering::SeqCst);
                    let _ = reply.send(rows);
                }
            })?;
        built_rx
            .recv()
            .map_err(|_| anyhow::anyhow!("the document worker of {name:?} did not start"))?
            .map_err(|e| anyhow::anyhow!(e))?;
        Ok(DocumentWorker { jobs, busy })
    }

    /// Whether a document (perhaps an abandoned one) is still being parsed.
    pub fn is_busy(&self) -> bool {
        self.busy.load(Ordering::SeqCst)
    }

    /// The rows of every rule for `text`, waiting at most `budget`.
    pub async fn extract(
        &self,
        text: String,
        budget: Duration,
    ) -> Result<Vec<Vec<Row>>, WorkerError> {
        if self.busy.swap(true, Ordering::SeqCst) {
            return Err(WorkerError::Busy);
        }
        let (reply, rows) = tokio::sync::oneshot::channel();
        if self.jobs.send((text, reply)).is_err() {
            self.busy.store(false, Ordering::SeqCst);
            return Err(WorkerError::Extract(ExtractError::Parse(
                "the document worker stopped".into(),
            )));
        }
        match tokio::time::timeout(budget, rows).await {
            Ok(Ok(result)) => result.map_err(WorkerError::Extract),
            Ok(Err(_)) => Err(WorkerError::Extract(ExtractError::Parse(
                "the document worker stopped".into(),
            ))),
            Err(_) => Err(WorkerError::Timeout(budget)),
        }
    }
}
