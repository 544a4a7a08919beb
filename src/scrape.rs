//! One render of `/metrics` shared by the scrapes that arrive while it runs.
//!
//! A scrape that finds a render in flight waits for it instead of starting its own, so any
//! number of concurrent scrapes costs one render (on one blocking thread) and at most one gzip
//! of it; a scrape that arrives when none is in flight starts the next. What a scrape gets was
//! rendered after it arrived or, at the oldest, by a render that was still running when it
//! arrived.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{watch, OnceCell};

/// A finished render: the text, and its gzip made once on first demand.
pub struct Rendered {
    /// The plain exposition.
    pub text: Bytes,
    gzip: OnceCell<Result<Bytes, String>>,
}

impl Rendered {
    /// The gzipped exposition, compressed once however many scrapes ask for it.
    pub async fn gzip(self: &Arc<Self>) -> Result<Bytes, String> {
        let this = self.clone();
        self.gzip
            .get_or_init(|| async move {
                tokio::task::spawn_blocking(move || gzip(&this.text))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()))
            })
            .await
            .clone()
    }
}

fn gzip(text: &[u8]) -> std::io::Result<Bytes> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(text.len() / 4),
        flate2::Compression::fast(),
    );
    encoder.write_all(text)?;
    Ok(encoder.finish()?.into())
}

type Outcome = Option<Result<Arc<Rendered>, String>>;

/// Shares renders between concurrent scrapes.
#[derive(Default)]
pub struct RenderShare {
    in_flight: Mutex<Option<watch::Receiver<Outcome>>>,
}

impl RenderShare {
    /// The exposition: joins the render in flight, or starts one with `render` on the blocking
    /// pool.
    pub async fn get<F>(&self, render: F) -> Result<Arc<Rendered>, String>
    where
        F: FnOnce() -> anyhow::Result<Vec<u8>> + Send + 'static,
    {
        let mut rx = {
            let mut slot = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            match slot.as_ref() {
                Some(rx) if rx.borrow().is_none() => rx.clone(),
                _ => {
                    let (tx, rx) = watch::channel(None);
                    *slot = Some(rx.clone());
                    tokio::task::spawn_blocking(move || {
                        let outcome =
                            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(render)) {
                                Ok(Ok(text)) => Ok(Arc::new(Rendered {
                                    text: text.into(),
                                    gzip: OnceCell::new(),
                                })),
                                Ok(Err(e)) => Err(format!("{e:#}")),
                                Err(_) => Err("rendering panicked".to_owned()),
                            };
                        let _ = tx.send(Some(outcome));
                    });
                    rx
                }
            }
        };
        let outcome = match rx.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone().expect("waited for Some"),
            Err(_) => Err("rendering stopped".to_owned()),
        };
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Scrapes that arrive while a render runs share it; a later scrape gets a new one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_scrapes_share_one_render() {
        let share = Arc::new(RenderShare::default());
        let renders = Arc::new(AtomicUsize::new(0));
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        let mut scrapes = Vec::new();
        for _ in 0..50 {
            let (share, renders, release_rx) = (share.clone(), renders.clone(), release_rx.clone());
            scrapes.push(tokio::spawn(async move {
                share
                    .get(move || {
                        let n = renders.fetch_add(1, Ordering::SeqCst);
                        release_rx.lock().unwrap().recv().unwrap();
                        Ok(format!("render {n}\n").into_bytes())
                    })
                    .await
            }));
        }
        // Let every scrape reach the share, then finish the one render they wait for.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        release_tx.send(()).unwrap();
        for s in scrapes {
            let r = s.await.unwrap().unwrap();
            assert_eq!(&r.text[..], b"render 0\n");
            assert!(!r.gzip().await.unwrap().is_empty());
        }
        assert_eq!(renders.load(Ordering::SeqCst), 1);
        let renders2 = renders.clone();
        let later = share
            .get(move || {
                Ok(format!("render {}\n", renders2.fetch_add(1, Ordering::SeqCst)).into_bytes())
            })
            .await
            .unwrap();
        assert_eq!(&later.text[..], b"render 1\n");
    }
}
