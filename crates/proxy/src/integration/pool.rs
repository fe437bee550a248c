//! The HTTP/1.1 upstream connection pool.
//!
//! Each pooled connection is a hyper `SendRequest` handle whose connection runs on its own task.
//! A handle is taken out for one request and put back only when that response's body has been
//! read to the end ([`PoolReturn`], carried by the response body), so a handle in the pool is
//! always idle and ready. This replaces hyper-util's legacy client on the HTTP/1.1 path, which
//! re-derives a pool key and a `Host` header from the URI, races a connect against every checkout
//! and spawns a task per request to wait for the connection to become ready again
//! (bench/RESULTS.md).
//!
//! A request that fails on a reused connection before any of it was written (the upstream closed
//! the idle connection) is retried once on a fresh connection.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::uri::{Authority, Scheme};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::body::RequestBody;

/// Idle connections older than this are not reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// At most this many idle connections are kept per upstream.
const MAX_IDLE_PER_UPSTREAM: usize = 1024;

/// Which upstream a connection talks to.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub(crate) struct PoolKey {
    tls: bool,
    authority: Authority,
}

impl PoolKey {
    pub(crate) fn new(scheme: Option<&Scheme>, authority: &Authority) -> Self {
        Self {
            tls: scheme == Some(&Scheme::HTTPS),
            authority: authority.clone(),
        }
    }

    fn port(&self) -> u16 {
        self.authority
            .port_u16()
            .unwrap_or(if self.tls { 443 } else { 80 })
    }

    fn host(&self) -> &str {
        self.authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
    }
}

struct Idle {
    sender: http1::SendRequest<RequestBody>,
    since: Instant,
}

/// Why a request could not be exchanged with the upstream.
#[derive(Debug)]
pub(crate) enum UpstreamError {
    /// No connection could be made (DNS, TCP or TLS).
    Connect(String),
    /// The connection failed while sending the request or reading the response head.
    Exchange(hyper::Error),
}

impl UpstreamError {
    pub(crate) fn is_connect(&self) -> bool {
        matches!(self, Self::Connect(_))
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(reason) => write!(f, "connect failed: {reason}"),
            Self::Exchange(error) => {
                write!(f, "{error}")?;
                let mut source = error.source();
                while let Some(cause) = source {
                    write!(f, ": {cause}")?;
                    source = cause.source();
                }
                Ok(())
            }
        }
    }
}

/// Pooled HTTP/1.1 connections to every upstream.
pub(crate) struct Http1Pool {
    idle: Mutex<HashMap<PoolKey, Vec<Idle>, BuildFnv>>,
    tls: tokio_rustls::TlsConnector,
}

/// FNV-1a: the pool is looked up twice per request with short keys from our own config, so
/// SipHash's flooding resistance buys nothing here and cost 2 % of a request's instructions.
#[derive(Clone, Copy, Default)]
struct BuildFnv;

struct Fnv(u64);

impl std::hash::BuildHasher for BuildFnv {
    type Hasher = Fnv;
    fn build_hasher(&self) -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A connection on loan to one request; returned to the pool when the response body is done.
pub(crate) struct PoolReturn {
    pool: Arc<Http1Pool>,
    key: PoolKey,
    sender: http1::SendRequest<RequestBody>,
}

impl PoolReturn {
    /// The response was read to the end: the connection can serve the next request.
    pub(crate) fn release(self) {
        self.pool.put(self.key, self.sender);
    }
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

impl Http1Pool {
    pub(crate) fn new(tls: &rustls::ClientConfig) -> Self {
        let mut tls = tls.clone();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self {
            idle: Mutex::new(HashMap::with_hasher(BuildFnv)),
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
        }
    }

    fn take_idle(&self, key: &PoolKey) -> Option<http1::SendRequest<RequestBody>> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.get_mut(key)?;
        while let Some(entry) = list.pop() {
            if entry.since.elapsed() < IDLE_TIMEOUT && !entry.sender.is_closed() {
                return Some(entry.sender);
            }
        }
        None
    }

    fn put(&self, key: PoolKey, sender: http1::SendRequest<RequestBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.entry(key).or_default();
        if list.len() < MAX_IDLE_PER_UPSTREAM {
            list.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    async fn connect(
        &self,
        key: &PoolKey,
    ) -> Result<http1::SendRequest<RequestBody>, UpstreamError> {
        let host = key.host();
        let port = key.port();
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(|e| UpstreamError::Connect(format!("tcp connect to {host}:{port}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = if key.tls {
            let name = rustls_pki_types::ServerName::try_from(host.to_owned()).map_err(|e| {
                UpstreamError::Connect(format!("invalid TLS server name {host}: {e}"))
            })?;
            let stream =
                self.tls.connect(name, tcp).await.map_err(|e| {
                    UpstreamError::Connect(format!("TLS handshake with {host}: {e}"))
                })?;
            Box::new(stream)
        } else {
            Box::new(tcp)
        };
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| UpstreamError::Connect(format!("HTTP handshake with {host}: {e}")))?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// Sends `request` (origin-form URI, `Host` set) to the upstream `key` names.
    pub(crate) async fn send(
        self: &Arc<Self>,
        key: PoolKey,
        request: Request<RequestBody>,
    ) -> Result<(Response<Incoming>, PoolReturn), UpstreamError> {
        let mut request = request;
        // A connection comes back when its response body ended; its task may need one more turn
        // to notice, so wait for it to be ready (normally at once).
        if let Some(mut sender) = self.take_idle(&key)
            && sender.ready().await.is_ok()
        {
            match sender.try_send_request(request).await {
                Ok(response) => return Ok((response, self.loan(key, sender))),
                Err(mut failed) => match failed.take_message() {
                    // Nothing was written: the idle connection had gone stale. Try a new one.
                    Some(unsent) => request = unsent,
                    None => return Err(UpstreamError::Exchange(failed.into_error())),
                },
            }
        }
        let mut sender = self.connect(&key).await?;
        let response = sender
            .send_request(request)
            .await
            .map_err(UpstreamError::Exchange)?;
        Ok((response, self.loan(key, sender)))
    }

    fn loan(self: &Arc<Self>, key: PoolKey, sender: http1::SendRequest<RequestBody>) -> PoolReturn {
        PoolReturn {
            pool: Arc::clone(self),
            key,
            sender,
        }
    }
}
