//! RFC 9457 problem details: the body of every paxid error response.
//!
//! The `type` URIs below are part of the public contract: clients branch on
//! them, so they never change meaning. They are identifiers, not links; they
//! need not resolve.

use serde::{Deserialize, Serialize};

/// Media type of every paxid error body.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// RFC 9457 default when a problem has no more specific type.
pub const ABOUT_BLANK: &str = "about:blank";

/// 400/422: the request parsed but its content is not acceptable.
pub const INVALID_REQUEST: &str = "https://paxid.dev/problems/invalid-request";
/// 400: the body is not syntactically valid JSON.
pub const MALFORMED_JSON: &str = "https://paxid.dev/problems/malformed-json";
/// 415: a body was sent without `Content-Type: application/json`.
pub const UNSUPPORTED_MEDIA_TYPE: &str = "https://paxid.dev/problems/unsupported-media-type";
/// 413: the body exceeds the configured limit.
pub const PAYLOAD_TOO_LARGE: &str = "https://paxid.dev/problems/payload-too-large";
/// 404: no such route or resource.
pub const NOT_FOUND: &str = "https://paxid.dev/problems/not-found";
/// 405: the route exists but not for this method.
pub const METHOD_NOT_ALLOWED: &str = "https://paxid.dev/problems/method-not-allowed";
/// 401: an internal endpoint was called without the cluster token.
pub const UNAUTHORIZED: &str = "https://paxid.dev/problems/unauthorized";
/// 409: the request conflicts with the current state (for example a
/// higher ballot was promised).
pub const CONFLICT: &str = "https://paxid.dev/problems/conflict";
/// 503: no leader or no quorum is reachable right now; retry after the
/// `Retry-After` header.
pub const UNAVAILABLE: &str = "https://paxid.dev/problems/unavailable";
/// An acceptor that does not vote: blank (a new cluster not founded yet, or
/// a lost disk not rebuilt yet) or retired. 503: retry another acceptor.
pub const NOT_VOTING: &str = "https://paxid.dev/problems/not-voting";
/// 409: the caller names another cluster than this acceptor's.
pub const WRONG_CLUSTER: &str = "https://paxid.dev/problems/wrong-cluster";
/// 503: the request did not complete within the server's time limit. IDs
/// may have been consumed (a gap), never handed out twice.
pub const TIMEOUT: &str = "https://paxid.dev/problems/timeout";
/// 422: an `Idempotency-Key` used before with another `count` or
/// `sequence`.
pub const IDEMPOTENCY_KEY_REUSED: &str = "https://paxid.dev/problems/idempotency-key-reused";
/// 409 with `Retry-After`: a call with this `Idempotency-Key` is under way
/// and not answered yet; retry to get its answer.
pub const IDEMPOTENCY_KEY_IN_USE: &str = "https://paxid.dev/problems/idempotency-key-in-use";
/// 500: a bug or an unexpected failure on the server.
pub const INTERNAL: &str = "https://paxid.dev/problems/internal";

/// Every type a client of the public APIs (`POST /next-id`, the
/// subscription API) can receive, with the statuses it comes with and
/// when; the OpenAPI documents list each under `x-problem-types` and in the
/// `type` enum of the `Problem` schema. (`not-voting` and `wrong-cluster`
/// come only from acceptors.)
pub const PUBLIC_TYPE_DOCS: &[(&str, &str)] = &[
    (
        INVALID_REQUEST,
        "422: valid JSON with wrong fields or values, or a path parameter out of range; \
         400: a query string that does not parse",
    ),
    (MALFORMED_JSON, "400: the body is not JSON"),
    (
        UNSUPPORTED_MEDIA_TYPE,
        "415: a body with a content type other than application/json",
    ),
    (PAYLOAD_TOO_LARGE, "413: a body over --body-limit-bytes"),
    (NOT_FOUND, "404: no such route or resource"),
    (METHOD_NOT_ALLOWED, "405: the route exists, not with this method"),
    (
        UNAUTHORIZED,
        "401: the scope's token is configured and the call has none of its tokens",
    ),
    (
        CONFLICT,
        "409: the request contradicts the state (a sequence that would pass 2^64-1, \
         a subscription state that does not allow it)",
    ),
    (
        UNAVAILABLE,
        "503 with Retry-After: no leader or quorum reachable yet; retry",
    ),
    (
        TIMEOUT,
        "503 with Retry-After: the request took longer than --request-timeout-ms; \
         it may have taken effect (POST /next-id: IDs may be skipped, never handed out twice)",
    ),
    (
        IDEMPOTENCY_KEY_REUSED,
        "422: POST /next-id with an Idempotency-Key used before with another count or sequence",
    ),
    (
        IDEMPOTENCY_KEY_IN_USE,
        "409 with Retry-After: POST /next-id with an Idempotency-Key whose first call is not answered yet; \
         retry to get that call's IDs",
    ),
    (INTERNAL, "500: a bug; nothing acknowledged is lost"),
];

/// The type URIs of [`PUBLIC_TYPE_DOCS`].
pub const PUBLIC_TYPES: &[&str] = &[
    INVALID_REQUEST,
    MALFORMED_JSON,
    UNSUPPORTED_MEDIA_TYPE,
    PAYLOAD_TOO_LARGE,
    NOT_FOUND,
    METHOD_NOT_ALLOWED,
    UNAUTHORIZED,
    CONFLICT,
    UNAVAILABLE,
    TIMEOUT,
    IDEMPOTENCY_KEY_REUSED,
    IDEMPOTENCY_KEY_IN_USE,
    INTERNAL,
];

/// An RFC 9457 problem details object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// A URI identifying the problem type; one of the constants above.
    #[serde(rename = "type", default = "about_blank")]
    pub type_: String,
    /// Short human-readable summary of the problem type.
    #[serde(default)]
    pub title: String,
    /// The HTTP status code, repeated for clients that lose the header.
    pub status: u16,
    /// Human-readable explanation of this occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// URI reference identifying this occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Extension members, serialized at the top level (RFC 9457 §3.2).
    #[serde(flatten)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

impl Problem {
    /// A problem with no detail, instance or extensions.
    pub fn new(type_: &str, title: &str, status: u16) -> Self {
        Self {
            type_: type_.to_owned(),
            title: title.to_owned(),
            status,
            detail: None,
            instance: None,
            extensions: serde_json::Map::new(),
        }
    }

    /// Sets the human-readable detail of this occurrence.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Adds an extension member.
    pub fn with_extension(mut self, key: &str, value: serde_json::Value) -> Self {
        self.extensions.insert(key.to_owned(), value);
        self
    }
}

fn about_blank() -> String {
    ABOUT_BLANK.to_owned()
}

/// The `Problem` schema of the OpenAPI documents: written out rather than
/// derived, so that `type` is the enum of [`PUBLIC_TYPES`] (and
/// `about:blank`) and the `field` extension is named; the object stays
/// open to other extension members, as RFC 9457 allows.
impl utoipa::PartialSchema for Problem {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let string = || ObjectBuilder::new().schema_type(Type::String);
        let types = PUBLIC_TYPES.iter().copied().chain([ABOUT_BLANK]);
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "RFC 9457 problem details. `type` is one of the stable URIs listed in `x-problem-types`.",
            ))
            .property("type", string().enum_values(Some(types)))
            .required("type")
            .property("title", string())
            .required("title")
            .property(
                "status",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(400))
                    .maximum(Some(599)),
            )
            .required("status")
            .property("detail", string())
            .property("instance", string())
            .property(
                "field",
                string().description(Some("The request field at fault, where there is one.")),
            )
            .additional_properties(Some(utoipa::openapi::schema::AdditionalProperties::FreeForm(
                true,
            )))
            .into()
    }
}

impl utoipa::ToSchema for Problem {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_type_and_flattens_extensions() {
        let problem = Problem::new(UNAVAILABLE, "No quorum", 503)
            .with_detail("2 of 3 acceptors unreachable")
            .with_extension("leader", serde_json::json!(null));
        let value = serde_json::to_value(&problem).expect("serializes");
        assert_eq!(
            value,
            serde_json::json!({
                "type": UNAVAILABLE,
                "title": "No quorum",
                "status": 503,
                "detail": "2 of 3 acceptors unreachable",
                "leader": null,
            })
        );
        let back: Problem = serde_json::from_value(value).expect("deserializes");
        assert_eq!(back, problem);
    }

    #[test]
    fn every_public_type_is_described_once() {
        let described: Vec<&str> = PUBLIC_TYPE_DOCS.iter().map(|(t, _)| *t).collect();
        assert_eq!(described, PUBLIC_TYPES);
    }

    #[test]
    fn missing_type_defaults_to_about_blank() {
        let problem: Problem = serde_json::from_str(r#"{"status":404}"#).expect("parses");
        assert_eq!(problem.type_, ABOUT_BLANK);
        assert!(problem.extensions.is_empty());
    }
}
