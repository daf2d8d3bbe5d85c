//! One beats connection: a reader that decodes frames and turns events
//! into buffer records, and an acker that stores them and writes ACKs.
//! They run side by side so keep-alives go out while a push waits.

use super::Shared;
use super::frame::{self, Frame, FrameError};
use crate::buffer::{BufferError, Pushed};
use crate::config::KeepAlive;
use crate::ecs::log::Event;
use crate::model::now_ms;
use crate::sink::Encoded;
use bytes::{Buf, BytesMut};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// A partial window is handed to the acker past this many events or bytes,
/// so a large window never sits whole in memory.
const CHUNK_EVENTS: usize = 4096;
const CHUNK_BYTES: usize = 4 << 20;
/// Read and inflate buffers above this are given back once empty.
const KEEP_CAPACITY: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("{1}")]
    Protocol(&'static str, String),
    #[error("window of {size} events exceeds max_window_size {max}")]
    WindowTooLarge { size: u32, max: u32 },
    #[error("no data for {0:?} (idle_timeout) with no window waiting on kubegate")]
    Idle(Duration),
    #[error("read: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot write ACK: {0}")]
    AckWrite(std::io::Error),
    #[error("buffer: {0}")]
    Buffer(#[from] BufferError),
}

impl ConnError {
    /// (`limit`, name) or (`protocol`, reason) for the counters.
    fn label(&self) -> Option<(bool, &'static str)> {
        match self {
            ConnError::Frame(e) => Some((e.is_limit(), e.reason())),
            ConnError::Protocol(r, _) => Some((false, r)),
            ConnError::WindowTooLarge { .. } => Some((true, "window_size")),
            ConnError::Idle(_) => Some((true, "idle_timeout")),
            _ => None,
        }
    }
}

/// Records of one window (or part of one) for the acker.
struct Chunk {
    records: Vec<Vec<u8>>,
    version: u8,
    /// First sequence of the window this chunk belongs to.
    window_first: u32,
    last_seq: u32,
    /// The window's last chunk: ACK after it is stored.
    end: bool,
    events: u64,
}

#[derive(Default)]
struct Window {
    active: bool,
    version: u8,
    size: u32,
    received: u32,
    first_seq: u32,
    last_seq: u32,
    records: Vec<Vec<u8>>,
    bytes: usize,
    events: u64,
}

pub(crate) async fn handle<S>(stream: S, peer: SocketAddr, sh: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (rd, wr) = tokio::io::split(stream);
    let (tx, rx) = mpsc::channel::<Chunk>(2);
    let waiting = Arc::new(AtomicU32::new(0));
    let acker = tokio::spawn(acker(wr, rx, sh.clone(), waiting.clone()));
    let mut reader = Reader {
        sh: sh.clone(),
        peer,
        peer_ip: peer.ip().to_string(),
        tx,
        win: Window::default(),
        ready: Vec::new(),
        waiting,
        invalid_logged: false,
    };
    let res = reader.run(rd).await;
    drop(reader);
    // The acker finishes the windows already handed over (they are stored
    // and ACKed if the socket still takes it), then ends.
    let acked = acker.await.unwrap_or(Ok(()));
    if let Some(e) = res.err().or(acked.err()) {
        report(&sh, peer, &e);
    } else {
        tracing::debug!(%peer, "beats connection closed by the client");
    }
}

fn report(sh: &Shared, peer: SocketAddr, e: &ConnError) {
    match e.label() {
        Some((true, limit)) => {
            sh.metrics.limits.with_label_values(&[limit]).inc();
            tracing::warn!(%peer, limit, error = %e, "beats connection closed: limit exceeded");
        }
        Some((false, reason)) => {
            sh.metrics
                .protocol_errors
                .with_label_values(&[reason])
                .inc();
            tracing::warn!(%peer, reason, error = %e, "beats connection closed: protocol error");
        }
        None => tracing::info!(%peer, error = %e, "beats connection closed"),
    }
}

struct Reader {
    sh: Arc<Shared>,
    peer: SocketAddr,
    peer_ip: String,
    tx: mpsc::Sender<Chunk>,
    win: Window,
    ready: Vec<Chunk>,
    /// Windows handed to the acker and not yet ACKed: while any waits, a
    /// silent client is waiting on us, not idle.
    waiting: Arc<AtomicU32>,
    invalid_logged: bool,
}

impl Reader {
    async fn run<R: AsyncRead + Unpin>(&mut self, mut rd: R) -> Result<(), ConnError> {
        let mut buf = BytesMut::with_capacity(64 << 10);
        let mut inflated = Vec::new();
        loop {
            loop {
                let used = match frame::decode(&buf, &self.sh.limits)? {
                    None => break,
                    Some((f, used)) => {
                        self.on_frame(f, false, &mut inflated)?;
                        used
                    }
                };
                buf.advance(used);
            }
            for c in self.ready.drain(..) {
                if c.end {
                    self.waiting.fetch_add(1, Ordering::AcqRel);
                }
                if self.tx.send(c).await.is_err() {
                    return Ok(()); // the acker failed; it reports why
                }
            }
            if buf.is_empty() && buf.capacity() > KEEP_CAPACITY {
                buf = BytesMut::with_capacity(64 << 10);
            }
            if buf.capacity() - buf.len() < 16 << 10 {
                buf.reserve(256 << 10);
            }
            let n = loop {
                tokio::select! {
                    r = tokio::time::timeout(self.sh.idle, rd.read_buf(&mut buf)) => match r {
                        Ok(r) => break r?,
                        Err(_) if self.waiting.load(Ordering::Acquire) > 0 => continue,
                        Err(_) => return Err(ConnError::Idle(self.sh.idle)),
                    },
                    _ = self.tx.closed() => return Ok(()),
                }
            };
            if n == 0 {
                if !buf.is_empty() {
                    return Err(ConnError::Protocol(
                        "truncated",
                        format!(
                            "connection closed inside a frame ({} bytes of it received)",
                            buf.len()
                        ),
                    ));
                }
                if self.win.active && self.win.received > 0 {
                    tracing::debug!(peer = %self.peer, received = self.win.received, size = self.win.size, "client closed mid-window; it will send the window again");
                }
                return Ok(());
            }
        }
    }

    fn on_frame(
        &mut self,
        f: Frame<'_>,
        inside: bool,
        inflated: &mut Vec<u8>,
    ) -> Result<(), ConnError> {
        match f {
            Frame::Window { version, size } => {
                if size == 0 {
                    return Err(ConnError::Protocol(
                        "empty_window",
                        "window of 0 events".into(),
                    ));
                }
                if size > self.sh.max_window {
                    return Err(ConnError::WindowTooLarge {
                        size,
                        max: self.sh.max_window,
                    });
                }
                // A new window before the last one ended: what came of the
                // old one is stored, and the new window's ACK covers it.
                if self.win.active && !self.win.records.is_empty() {
                    self.cut(false);
                }
                self.win = Window {
                    active: true,
                    version,
                    size,
                    ..Window::default()
                };
            }
            Frame::Json {
                version: _,
                seq,
                payload,
            } => {
                self.start_event(seq)?;
                self.event(payload, None);
                self.end_event();
            }
            Frame::Data {
                version: _,
                seq,
                count,
                body,
            } => {
                self.start_event(seq)?;
                let mut obj = serde_json::Map::new();
                for (k, v) in frame::data_pairs(body, count) {
                    obj.insert(
                        String::from_utf8_lossy(k).into_owned(),
                        serde_json::Value::String(String::from_utf8_lossy(v).into_owned()),
                    );
                }
                // Logstash's beats input names lumberjack v1's `line` message.
                if !obj.contains_key("message")
                    && let Some(line) = obj.remove("line")
                {
                    obj.insert("message".into(), line);
                }
                let json = serde_json::to_vec(&obj).expect("serializes");
                self.event(&json, Some(body));
                self.end_event();
            }
            Frame::Compressed {
                version: _,
                payload,
            } => {
                if inside {
                    return Err(FrameError::NestedCompression.into());
                }
                frame::inflate(payload, self.sh.limits.max_decompressed, inflated)?;
                let inner = std::mem::take(inflated);
                let mut at = 0;
                let res = (|| -> Result<(), ConnError> {
                    while at < inner.len() {
                        match frame::decode(&inner[at..], &self.sh.limits)? {
                            Some((f, used)) => {
                                self.on_frame(f, true, &mut Vec::new())?;
                                at += used;
                            }
                            None => return Err(FrameError::TruncatedInner.into()),
                        }
                    }
                    Ok(())
                })();
                // Keep a large block's memory only while it is used: a
                // thousand idle connections must not each hold 64 MiB.
                *inflated = if inner.capacity() > KEEP_CAPACITY {
                    Vec::new()
                } else {
                    inner
                };
                res?;
            }
            Frame::Ack { .. } => {
                return Err(ConnError::Protocol(
                    "unexpected_ack",
                    "client sent an ACK frame".into(),
                ));
            }
        }
        Ok(())
    }

    fn start_event(&mut self, seq: u32) -> Result<(), ConnError> {
        if !self.win.active {
            return Err(ConnError::Protocol(
                "no_window",
                format!("event (sequence {seq}) outside a window: send a W frame first"),
            ));
        }
        if self.win.received == 0 {
            self.win.first_seq = seq;
        }
        self.win.received += 1;
        self.win.last_seq = seq;
        Ok(())
    }

    fn end_event(&mut self) {
        if self.win.received >= self.win.size {
            self.cut(true);
            self.win.active = false;
        } else if self.win.records.len() >= CHUNK_EVENTS || self.win.bytes >= CHUNK_BYTES {
            self.cut(false);
        }
    }

    fn cut(&mut self, end: bool) {
        let w = &mut self.win;
        self.ready.push(Chunk {
            records: std::mem::take(&mut w.records),
            version: w.version,
            window_first: w.first_seq,
            last_seq: w.last_seq,
            end,
            events: std::mem::take(&mut w.events),
        });
        w.bytes = 0;
    }

    /// One event to a buffer record (or to nothing, when filtered out or
    /// not JSON). `identity` defaults to the payload.
    fn event(&mut self, payload: &[u8], identity: Option<&[u8]>) {
        let m = &self.sh.metrics;
        let b = &self.sh.builder;
        let mut ev = match Event::parse(payload) {
            Ok(ev) => ev,
            Err(e) => {
                m.events.with_label_values(&["invalid"]).inc();
                if !std::mem::replace(&mut self.invalid_logged, true) {
                    tracing::warn!(peer = %self.peer, error = %e, "beats event skipped (logged once per connection)");
                }
                return;
            }
        };
        b.enrich(&mut ev, &self.peer_ip);
        if b.filtered_out(&ev) {
            m.events.with_label_values(&["filtered"]).inc();
            return;
        }
        if let Some(lm) = &self.sh.log_metrics
            && !ev.metric
        {
            lm.observe(&ev);
        }
        let doc = b.finish(ev, identity.unwrap_or(payload), now_ms());
        self.sh
            .self_metrics
            .documents_built
            .with_label_values(&[doc.dataset])
            .inc();
        let rec = Encoded::new(doc).into_record();
        self.win.bytes += rec.len();
        self.win.events += 1;
        self.win.records.push(rec);
    }
}

async fn acker<W: AsyncWrite + Unpin>(
    mut wr: W,
    mut rx: mpsc::Receiver<Chunk>,
    sh: Arc<Shared>,
    waiting: Arc<AtomicU32>,
) -> Result<(), ConnError> {
    while let Some(c) = rx.recv().await {
        let store = async {
            let n = c.records.len();
            let pushed = sh.writer.push(c.records).await?;
            if c.end {
                // The fsync policy may leave the pushed records in the page
                // cache; an ACK promises more than that.
                sh.writer.sync().await?;
            }
            Ok::<_, BufferError>((pushed, n))
        };
        tokio::pin!(store);
        let every = sh.keepalive_every;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let res = loop {
            tokio::select! {
                r = &mut store => break r,
                _ = tick.tick(), if sh.keepalive != KeepAlive::Off => {
                    let seq = match sh.keepalive {
                        KeepAlive::Zero => 0,
                        _ => c.window_first.saturating_sub(1),
                    };
                    write_ack(&mut wr, sh.idle, frame::ack(c.version, seq)).await?;
                    sh.metrics.acks.with_label_values(&["keepalive"]).inc();
                }
            }
        };
        let (pushed, n) = res?;
        let outcome = match pushed {
            Pushed::Stored => "stored",
            Pushed::Dropped => "dropped_buffer_full",
        };
        sh.metrics
            .events
            .with_label_values(&[outcome])
            .inc_by(c.events);
        debug_assert_eq!(n as u64, c.events);
        if c.end {
            write_ack(&mut wr, sh.idle, frame::ack(c.version, c.last_seq)).await?;
            waiting.fetch_sub(1, Ordering::AcqRel);
            sh.metrics.acks.with_label_values(&["window"]).inc();
            sh.metrics.windows.inc();
        }
    }
    Ok(())
}

async fn write_ack<W: AsyncWrite + Unpin>(
    wr: &mut W,
    timeout: Duration,
    bytes: [u8; 6],
) -> Result<(), ConnError> {
    let res = tokio::time::timeout(timeout, async {
        wr.write_all(&bytes).await?;
        wr.flush().await
    })
    .await;
    match res {
        Ok(r) => r.map_err(ConnError::AckWrite),
        Err(_) => Err(ConnError::AckWrite(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the client does not read its ACKs",
        ))),
    }
}
