//! The response future of [`super::VerifySignature`].

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::admission::ResponseFields;
use crate::Rejection;

/// Verification of one request, boxed because it awaits the key and nonce stores.
/// The verified request, and header fields the admission policy wants on its response.
pub(crate) type Verified = (Request<Full<Bytes>>, ResponseFields);

pub(crate) type VerifyFuture =
    Pin<Box<dyn Future<Output = Result<Verified, Rejection>> + Send + 'static>>;

pin_project! {
    /// Response future of [`super::VerifySignature`]: verifies, then drives
    /// its own clone of the inner service to readiness and calls it (as
    /// `tower::ServiceExt::oneshot` does), or answers with the rejection.
    ///
    /// The inner service's readiness (for example a concurrency-limit
    /// permit) is therefore only acquired once the body has been read and
    /// the request verified.
    pub struct ResponseFuture<S>
    where
        S: Service<Request<Full<Bytes>>>,
    {
        #[pin]
        state: State<S::Future>,
        service: Option<S>,
        headers: ResponseFields,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Verifying { verify: VerifyFuture },
        PollReady { request: Option<Request<Full<Bytes>>> },
        Calling { #[pin] future: F },
        // Answered: polling again gets `polled_after_completion`, never a
        // poll of a finished future.
        Done,
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
            headers: ResponseFields::new(),
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
                StateProj::Verifying { verify } => {
                    let (request, headers) = match ready!(verify.as_mut().poll(cx)) {
                        Ok(verified) => verified,
                        Err(rejection) => {
                            this.state.set(State::Done);
                            return Poll::Ready(Ok(rejection.into_http_response()));
                        }
                    };
                    *this.headers = headers;
                    // The inner service is usually ready at once: called
                    // here, the request goes straight into the call instead
                    // of being stored in `PollReady` and moved out again.
                    let Some(service) = this.service.as_mut() else {
                        return Poll::Ready(Ok(polled_after_completion()));
                    };
                    match service.poll_ready(cx) {
                        Poll::Ready(Ok(())) => {
                            let future = service.call(request);
                            *this.service = None;
                            this.state.set(State::Calling { future });
                        }
                        Poll::Ready(Err(e)) => {
                            this.state.set(State::Done);
                            return Poll::Ready(Err(e));
                        }
                        Poll::Pending => {
                            this.state.set(State::PollReady {
                                request: Some(request),
                            });
                            return Poll::Pending;
                        }
                    }
                }
                StateProj::PollReady { request } => {
                    let Some(service) = this.service.as_mut() else {
                        return Poll::Ready(Ok(polled_after_completion()));
                    };
                    if let Err(e) = ready!(service.poll_ready(cx)) {
                        this.state.set(State::Done);
                        return Poll::Ready(Err(e));
                    }
                    let (Some(mut service), Some(request)) = (this.service.take(), request.take())
                    else {
                        return Poll::Ready(Ok(polled_after_completion()));
                    };
                    let future = service.call(request);
                    this.state.set(State::Calling { future });
                }
                StateProj::Calling { future } => {
                    let answered = ready!(future.poll(cx));
                    this.state.set(State::Done);
                    let mut response = answered?;
                    // A client resends a `503` or `429` that carries
                    // `Tessera-Error` (spec §12.2): the application's own
                    // never does, whatever it passes on from elsewhere, since
                    // it may come after the application acted. (A 403 of
                    // `RequireScopeLayer` inside keeps it: no client resends
                    // on it.) The status first: no field lookup on most
                    // answers.
                    if matches!(
                        response.status(),
                        StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
                    ) {
                        response.headers_mut().remove(crate::ERROR_HEADER);
                    }
                    if !this.headers.is_empty() {
                        let response_headers = response.headers_mut();
                        for (name, value) in this.headers.drain(..) {
                            response_headers.insert(name, value);
                        }
                    }
                    return Poll::Ready(Ok(response));
                }
                StateProj::Done => return Poll::Ready(Ok(polled_after_completion())),
            }
        }
    }
}

/// Only reachable if the future is polled again after completing.
fn polled_after_completion<ResBody: From<Bytes>>() -> Response<ResBody> {
    let mut response = Response::new(ResBody::from(Bytes::new()));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}
