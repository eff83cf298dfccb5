//! JSON body extractors whose every rejection is a problem+json response.

// `ApiError` is the one error type; it is large (a problem document) but
// built only on the error path.
#![allow(clippy::result_large_err)]

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{FromRequest, Request};
use axum::Json;
use http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use crate::ApiError;

const EXPECTED_JSON: &str = "expected a body with `Content-Type: application/json`";

/// A required JSON body. Rejections: no or wrong `Content-Type` → 415,
/// invalid JSON → 400, wrong shape or types → 422, over the limit → 413.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JsonBody<T>(pub T);

/// An optional JSON body: `None` when the body is empty, whatever the
/// `Content-Type`; otherwise exactly the rules of [`JsonBody`].
///
/// For endpoints such as `POST /next-id` where "no body" means defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OptionalJsonBody<T>(pub Option<T>);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json_content_type(request.headers()) {
            return Err(ApiError::unsupported_media_type(EXPECTED_JSON));
        }
        let bytes = Bytes::from_request(request, state).await?;
        parse_object(&bytes).map(Self)
    }
}

impl<T, S> FromRequest<S> for OptionalJsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let headers = request.headers().clone();
        let bytes = Bytes::from_request(request, state).await?;
        if bytes.is_empty() {
            return Ok(Self(None));
        }
        if !is_json_content_type(&headers) {
            return Err(ApiError::unsupported_media_type(EXPECTED_JSON));
        }
        parse_object(&bytes).map(|value| Self(Some(value)))
    }
}

/// Parses a body that must be a JSON object. serde's derived structs also
/// accept a JSON array (fields by position, so `[]` would mean "all
/// defaults"); no request of ours is an array, so only objects are taken.
/// Malformed JSON is still a 400, well-formed JSON of the wrong shape a 422.
fn parse_object<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    let first = bytes.iter().find(|byte| !byte.is_ascii_whitespace());
    if first != Some(&b'{') {
        serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(|e| {
            ApiError::malformed_json(format!("Failed to parse the request body as JSON: {e}"))
        })?;
        return Err(ApiError::unprocessable("the body must be a JSON object"));
    }
    let Json(value) = Json::<T>::from_bytes(bytes)?;
    Ok(value)
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let detail = rejection.body_text();
        match rejection {
            JsonRejection::JsonDataError(_) => Self::unprocessable(detail),
            JsonRejection::JsonSyntaxError(_) => Self::malformed_json(detail),
            JsonRejection::MissingJsonContentType(_) => Self::unsupported_media_type(EXPECTED_JSON),
            JsonRejection::BytesRejection(rejection) => rejection.into(),
            // `JsonRejection` is non-exhaustive: classify future variants by status.
            rejection => Self::for_status(rejection.status()).with_detail(detail),
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Self::payload_too_large(rejection.body_text()),
            // The client went away or sent a broken body mid-stream.
            status => Self::for_status(status).with_detail(rejection.body_text()),
        }
    }
}

/// `application/json` or any `application/*+json`, parameters ignored; the
/// same rule as axum's `Json`.
fn is_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let Some(subtype) = essence.strip_prefix("application/") else {
        return false;
    };
    subtype == "json" || subtype.ends_with("+json")
}
