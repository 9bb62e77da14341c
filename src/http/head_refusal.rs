//! Problem bodies for the refusals hyper answers itself.
//!
//! When a request head cannot be parsed (a malformed header: 400; a target over 64 KiB: 414;
//! a head over about [`super::serve::MAX_HEAD_BYTES`] or with too many headers: 431) hyper writes a
//! bare status line with `content-length: 0` and closes the connection; no service of ours
//! runs and hyper has no hook to change that answer. This connection wrapper recognises that
//! exact write and sends the same status as a problem document instead, so that every error
//! has one envelope. Responses built by the router never match: they all carry a body.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::error::{ErrorCode, problem};

/// A connection whose hyper-made refusals are rewritten as problems.
pub struct ProblemRefusals<IO> {
    io: IO,
    /// The replacement still to send, and how much of it is sent.
    pending: Option<(Vec<u8>, usize)>,
}

impl<IO> ProblemRefusals<IO> {
    pub fn new(io: IO) -> Self {
        ProblemRefusals { io, pending: None }
    }
}

/// The refusal hyper is writing, if `head` is one: hyper writes its automatic answers as a
/// status line plus `content-length: 0`, which no response of ours has.
fn hyper_refusal(head: &[u8]) -> Option<ErrorCode> {
    let code = if head.starts_with(b"HTTP/1.1 400 ") {
        ErrorCode::BadRequest
    } else if head.starts_with(b"HTTP/1.1 414 ") {
        ErrorCode::UriTooLong
    } else if head.starts_with(b"HTTP/1.1 431 ") {
        ErrorCode::HeadersTooLarge
    } else {
        return None;
    };
    let empty = head.windows(21).any(|w| w == b"\r\ncontent-length: 0\r\n");
    empty.then_some(code)
}

/// The whole response that replaces hyper's bare one.
fn replacement(code: ErrorCode) -> Vec<u8> {
    let detail = match code {
        ErrorCode::UriTooLong => "the request target is longer than the server accepts",
        ErrorCode::HeadersTooLarge => {
            "the request headers are larger or more numerous than the server accepts"
        }
        _ => "the request line or a header could not be parsed",
    };
    let mut p = problem(code, detail.to_owned(), None);
    // No request was parsed, so none has an id yet: give this answer one to quote.
    p.request_id = uuid::Uuid::now_v7().to_string();
    let body = serde_json::to_vec(&p).unwrap_or_default();
    let status = code.status();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\n\
         connection: close\r\nx-request-id: {}\r\nx-content-type-options: nosniff\r\n\
         cache-control: no-store\r\ncontent-security-policy: {}\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error"),
        body.len(),
        p.request_id,
        super::middleware::JSON_CSP,
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

impl<IO: AsyncWrite + Unpin> ProblemRefusals<IO> {
    /// Sends what is left of the replacement.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, sent)) = &mut self.pending {
            if *sent == bytes.len() {
                break;
            }
            let n = std::task::ready!(Pin::new(&mut self.io).poll_write(cx, &bytes[*sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *sent += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for ProblemRefusals<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for ProblemRefusals<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.pending.is_some() {
            // hyper writes nothing after a refusal; should it, the connection is closing anyway.
            std::task::ready!(self.drain(cx))?;
            return Poll::Ready(Ok(buf.len()));
        }
        if let Some(code) = hyper_refusal(buf) {
            self.pending = Some((replacement(code), 0));
            // Accepted whole; sent by drain, now or on flush.
            let _ = self.drain(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let first = bufs.iter().find(|b| !b.is_empty());
        if self.pending.is_some() || first.is_some_and(|b| hyper_refusal(b).is_some()) {
            let total = bufs.iter().map(|b| b.len()).sum::<usize>();
            let head = first.map_or(&[][..], |b| &b[..]);
            return match self.as_mut().poll_write(cx, head) {
                Poll::Ready(Ok(_)) => Poll::Ready(Ok(total)),
                other => other,
            };
        }
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.drain(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.drain(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_empty_refusals_are_recognised() {
        let hyper =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert_eq!(hyper_refusal(hyper), Some(ErrorCode::HeadersTooLarge));
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\ncontent-length: 120\r\n\r\n";
        assert_eq!(hyper_refusal(ours), None);
        assert_eq!(
            hyper_refusal(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"),
            None
        );
    }

    #[test]
    fn the_replacement_is_a_complete_problem_response() {
        let r = String::from_utf8(replacement(ErrorCode::UriTooLong)).expect("utf-8");
        let (head, body) = r.split_once("\r\n\r\n").expect("head and body");
        assert!(head.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{head}");
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let p: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(p["code"], "uri_too_long");
        assert_eq!(p["status"], 414);
    }
}
