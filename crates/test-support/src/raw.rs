//! A client that writes raw bytes and reads raw HTTP/1.1 answers, for what real clients refuse to
//! send: malformed request lines, conflicting framing headers, heads that never end.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a read may take before the test fails; every read is bounded.
pub const RAW_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// One parsed HTTP/1.1 response.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    /// Header names lowercased, in received order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON, failing the test if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "body is not JSON ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// How a connection ended when the test waited for it to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The peer closed it (EOF or reset).
    ByPeer,
    /// It was still open when the wait ended.
    StillOpen,
}

/// A raw TCP client speaking whatever bytes the test gives it.
#[derive(Debug)]
pub struct RawClient {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl RawClient {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr)
            .await
            .expect("connect to the gateway");
        stream.set_nodelay(true).expect("set TCP_NODELAY");
        Self {
            stream,
            buffer: Vec::new(),
        }
    }

    /// The client's own address, as the gateway sees it.
    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().expect("local address")
    }

    /// Writes all of `bytes`.
    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// Reads more bytes into the buffer; `Ok(0)` at EOF.
    async fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let n = tokio::time::timeout(RAW_READ_TIMEOUT, self.stream.read(&mut chunk))
            .await
            .map_err(|_| {
                io::Error::new(io::ErrorKind::TimedOut, "no bytes from the gateway in time")
            })??;
        self.buffer.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    async fn need(&mut self, len: usize) -> io::Result<()> {
        while self.buffer.len() < len {
            if self.fill().await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed mid-response",
                ));
            }
        }
        Ok(())
    }

    async fn line(&mut self) -> io::Result<String> {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buffer[..end]).into_owned();
                self.buffer.drain(..end + 2);
                return Ok(line);
            }
            if self.fill().await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed mid-line",
                ));
            }
        }
    }

    fn take(&mut self, len: usize) -> Vec<u8> {
        self.buffer.drain(..len).collect()
    }

    /// Reads one response head (status line and headers).
    pub async fn read_head(&mut self) -> io::Result<(u16, Vec<(String, String)>)> {
        let status_line = self.line().await?;
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad status line {status_line:?}"),
                )
            })?;
        let mut headers = Vec::new();
        loop {
            let line = self.line().await?;
            if line.is_empty() {
                return Ok((status, headers));
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
    }

    /// Reads one complete response; `head_request` says the body is absent whatever the headers say.
    pub async fn read_response_to(&mut self, head_request: bool) -> io::Result<RawResponse> {
        let (status, headers) = self.read_head().await?;
        let mut response = RawResponse {
            status,
            headers,
            body: Vec::new(),
        };
        if head_request || status < 200 || status == 204 || status == 304 {
            return Ok(response);
        }
        let chunked = response
            .header("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
        if chunked {
            loop {
                let size_line = self.line().await?;
                let size_text = size_line.split(';').next().unwrap_or_default().trim();
                let size = usize::from_str_radix(size_text, 16)
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
                if size == 0 {
                    while !self.line().await?.is_empty() {}
                    return Ok(response);
                }
                self.need(size + 2).await?;
                let chunk = self.take(size);
                response.body.extend_from_slice(&chunk);
                self.take(2);
            }
        }
        if let Some(length) = response
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok())
        {
            self.need(length).await?;
            response.body = self.take(length);
            return Ok(response);
        }
        while self.fill().await? > 0 {}
        response.body = std::mem::take(&mut self.buffer);
        Ok(response)
    }

    /// Reads one complete response to a request that was not HEAD.
    pub async fn read_response(&mut self) -> io::Result<RawResponse> {
        self.read_response_to(false).await
    }

    /// Sends `request` and reads the response.
    pub async fn roundtrip(&mut self, request: &[u8]) -> io::Result<RawResponse> {
        self.send(request).await?;
        self.read_response().await
    }

    /// Waits up to `within` for the peer to close the connection, discarding anything it sends.
    pub async fn wait_closed(&mut self, within: Duration) -> Closed {
        let deadline = tokio::time::Instant::now() + within;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return Closed::StillOpen,
                Ok(Ok(0)) | Ok(Err(_)) => return Closed::ByPeer,
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Bytes received but not consumed by a read yet.
    pub fn buffered(&self) -> &[u8] {
        &self.buffer
    }

    /// Reads until the peer closes (or `RAW_READ_TIMEOUT` passes) and returns everything received.
    pub async fn read_to_close(&mut self) -> Vec<u8> {
        loop {
            match self.fill().await {
                Ok(0) | Err(_) => return std::mem::take(&mut self.buffer),
                Ok(_) => {}
            }
        }
    }
}
