//! axum glue (feature `axum`): the [`VerifiedIdentity`] extractor and
//! `IntoResponse` for [`Rejection`].

use std::fmt;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;

use crate::{Rejection, VerifiedIdentity};

/// Extracts the identity [`crate::VerifySignatureLayer`] verified.
///
/// Fails with [`MissingIdentity`] (500) when the layer is not installed on
/// the route: that is a server configuration error, not a client one.
/// `Option<VerifiedIdentity>` never fails.
impl<S: Send + Sync> FromRequestParts<S> for VerifiedIdentity {
    type Rejection = MissingIdentity;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<VerifiedIdentity>()
            .cloned()
            .ok_or(MissingIdentity)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for VerifiedIdentity {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<VerifiedIdentity>().cloned())
    }
}

/// The handler asked for a [`VerifiedIdentity`] but the request carries
/// none: `VerifySignatureLayer` is not installed on this route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MissingIdentity;

impl fmt::Display for MissingIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no verified identity: VerifySignatureLayer is not installed on this route")
    }
}

impl std::error::Error for MissingIdentity {}

impl IntoResponse for MissingIdentity {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

/// Lets handlers return `Result<_, Rejection>`, for example with
/// [`VerifiedIdentity::require_scope`].
impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        self.into_http_response()
    }
}
