//! Reading request bodies: a deadline for the whole body, the size limit, and one mapping of
//! every way a read fails to the client's error (a stalled upload is the client's 408, never a
//! server 503; too much is 413).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use http_body::{Frame, SizeHint};
use tokio::time::Sleep;

use super::error::ApiError;

/// The limits a request's body is read under (a request extension set by the conventions
/// middleware).
#[derive(Clone, Copy)]
pub struct BodyLimits {
    pub max_bytes: usize,
    pub timeout: Duration,
}

/// A request body that fails with [`BodyTimedOut`] once its deadline passes.
pub struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<Sleep>>,
}

impl DeadlineBody {
    /// `inner`, which must arrive completely within `timeout` from now.
    pub fn new(inner: Body, timeout: Duration) -> DeadlineBody {
        DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

/// The client did not finish sending its body in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimedOut;

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        // Data that has arrived wins over a deadline that passed meanwhile.
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Puts the deadline on a request that has a body to wait for.
pub fn with_deadline(req: Request, timeout: Duration) -> Request {
    if req.body().is_end_stream() {
        return req;
    }
    req.map(|b| Body::new(DeadlineBody::new(b, timeout)))
}

/// The whole body, within the request's limits.
pub async fn read(req: Request) -> Result<Bytes, ApiError> {
    let limits = req.extensions().get::<BodyLimits>().copied();
    read_body(req.into_body(), limits).await
}

/// The whole of `body`, within `limits` (those of its request).
pub async fn read_body(body: Body, limits: Option<BodyLimits>) -> Result<Bytes, ApiError> {
    let max = limits.map_or(usize::MAX, |l| l.max_bytes);
    axum::body::to_bytes(body, max)
        .await
        .map_err(|e| read_failure(&e, limits))
}

/// What a failed read means to the client.
fn read_failure(e: &axum::Error, limits: Option<BodyLimits>) -> ApiError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<BodyTimedOut>() {
            return ApiError::BodyTimeout(limits.map_or(Duration::ZERO, |l| l.timeout));
        }
        if c.is::<http_body_util::LengthLimitError>() {
            return ApiError::PayloadTooLarge(limits.map_or(0, |l| l.max_bytes));
        }
        cause = c.source();
    }
    ApiError::bad_request("the request body could not be read")
}

/// The raw body, for the few routes that verify or store bytes as sent (signed webhooks,
/// reports): same limits and errors as [`super::Json`].
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        read(req).await.map(RawBody)
    }
}
