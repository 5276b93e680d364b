//! The response future of [`super::VerifySignature`].

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::Rejection;

/// Verification of one request, boxed because it awaits the key and nonce stores.
pub(crate) type VerifyFuture =
    Pin<Box<dyn Future<Output = Result<Request<Full<Bytes>>, Rejection>> + Send + 'static>>;

pin_project! {
    /// Response future of [`super::VerifySignature`]: verifies, then calls
    /// the inner service, or answers with the rejection.
    pub struct ResponseFuture<S>
    where
        S: Service<Request<Full<Bytes>>>,
    {
        #[pin]
        state: State<S::Future>,
        service: Option<S>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Verifying { verify: VerifyFuture },
        Calling { #[pin] future: F },
    }
}

impl<S> ResponseFuture<S>
where
    S: Service<Request<Full<Bytes>>>,
{
    pub(crate) fn new(verify: VerifyFuture, service: S) -> Self {
        ResponseFuture {
            state: State::Verifying { verify },
            service: Some(service),
        }
    }
}

impl<S> std::fmt::Debug for ResponseFuture<S>
where
    S: Service<Request<Full<Bytes>>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, ResBody> Future for ResponseFuture<S>
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Verifying { verify } => match ready!(verify.as_mut().poll(cx)) {
                    Ok(request) => {
                        let Some(mut service) = this.service.take() else {
                            // Only reachable if polled again after completion.
                            let mut response = Response::new(ResBody::from(Bytes::new()));
                            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                            return Poll::Ready(Ok(response));
                        };
                        let future = service.call(request);
                        this.state.set(State::Calling { future });
                    }
                    Err(rejection) => return Poll::Ready(Ok(rejection.into_http_response())),
                },
                StateProj::Calling { future } => return future.poll(cx),
            }
        }
    }
}
