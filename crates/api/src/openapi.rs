//! The OpenAPI 3.1 documents of the public APIs, served at
//! `GET /openapi.json` without credentials.
//!
//! They are generated from the code with utoipa: the schemas from the wire
//! types of this crate (`#[derive(ToSchema)]`), the operations from the
//! handlers' `#[utoipa::path]` attributes (`crates/sequencer/src/openapi.rs`,
//! `crates/learner/src/openapi.rs`), the problem types from
//! [`crate::problem::PUBLIC_TYPE_DOCS`]. The generated text is kept in
//! `crates/api/openapi/*.json` (the bytes the services serve, and a file a
//! client generator can read without a running cluster); each service's
//! unit test fails when the file and the code differ, and
//! `PAXID_WRITE_OPENAPI=1 cargo test -p paxid-sequencer -p paxid-learner
//! openapi` writes it again. `tests/tests/openapi.rs` holds the documents to
//! every route the routers serve and to real answers.
//!
//! Internal routes (between services, behind `--cluster-token`) are left
//! out on purpose: they are the project's own design, may change between
//! releases, and are documented in `docs/internal-api.md`. They are listed
//! in [`SEQUENCER_INTERNAL_ROUTES`] and [`LEARNER_INTERNAL_ROUTES`] so that
//! a route is always either documented or declared internal.

use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{LicenseBuilder, OpenApi, RefOr};
use utoipa::ToSchema;

use crate::problem::{Problem, PUBLIC_TYPE_DOCS};
use crate::routes;

/// The sequencer's client API (`POST /next-id`) and probes, as served.
pub const SEQUENCER: &str = include_str!("../openapi/sequencer.json");
/// The learner's subscription API and probes, as served.
pub const LEARNER: &str = include_str!("../openapi/learner.json");

/// Routes a sequencer serves that its document leaves out: `(method, path)`.
pub const SEQUENCER_INTERNAL_ROUTES: &[(&str, &str)] =
    &[("GET", routes::STATUS), ("POST", routes::ACCEPTORS)];
/// Routes a learner serves that its document leaves out: `(method, path)`.
pub const LEARNER_INTERNAL_ROUTES: &[(&str, &str)] = &[("POST", routes::CHOSEN), ("GET", routes::STATUS)];

/// Name of the bearer security scheme in both documents.
pub const BEARER: &str = "bearer";

/// A sequence name, as `POST /next-id` and the subscription filters take it.
pub const SEQUENCE_PATTERN: &str = r"^[A-Za-z0-9_.-]{1,64}$";

/// Body of `GET /livez`, `/healthz` and a ready `/readyz`.
#[derive(ToSchema)]
#[schema(as = Status)]
#[allow(dead_code)] // a schema only: the probes answer with `serde_json::json!`.
pub struct ProbeStatus {
    /// `live` or `ready`.
    status: String,
}

/// The probes and this document, served by every paxid binary
/// (`service::health_routes`, `service::openapi_route`).
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(livez, healthz, readyz, metrics, openapi),
    components(schemas(ProbeStatus, Problem))
)]
pub struct Probes;

#[utoipa::path(
    get,
    path = "/livez",
    operation_id = "livez",
    summary = "The process answers (never depends on peers).",
    tag = "operations",
    security(),
    responses((status = 200, description = "Live.", body = ProbeStatus))
)]
#[allow(dead_code)]
fn livez() {}

#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    summary = "Alias of /livez.",
    tag = "operations",
    security(),
    responses((status = 200, description = "Live.", body = ProbeStatus))
)]
#[allow(dead_code)]
fn healthz() {}

#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    summary = "Ready to serve.",
    description = "Sequencer: a quorum of acceptors and a leader reachable. Learner: store open, learning not stalled.",
    tag = "operations",
    security(),
    responses(
        (status = 200, description = "Ready.", body = ProbeStatus),
        (status = 503, description = "Not available now; retry after Retry-After seconds.",
            body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    )
)]
#[allow(dead_code)]
fn readyz() {}

#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    summary = "Prometheus text exposition.",
    tag = "operations",
    security(),
    responses((status = 200, description = "Metrics.", body = String, content_type = "text/plain"))
)]
#[allow(dead_code)]
fn metrics() {}

#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    summary = "This document.",
    tag = "operations",
    security(),
    responses((status = 200, description = "OpenAPI 3.1 document.", body = Object, content_type = "application/json"))
)]
#[allow(dead_code)]
fn openapi() {}

/// Completes a service's document: the probes, the bearer scheme (described
/// by `token`: which flag guards what), the license and `x-problem-types`.
pub fn finish(mut document: OpenApi, token: &str) -> OpenApi {
    use utoipa::OpenApi as _;
    document.merge(Probes::openapi());
    document.info.license = Some(
        LicenseBuilder::new()
            .name("Apache-2.0")
            .identifier(Some("Apache-2.0"))
            .build(),
    );
    document.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let components = document.components.get_or_insert_with(Default::default);
    let mut bearer = Http::new(HttpAuthScheme::Bearer);
    bearer.description = Some(format!("{token} Probes, /metrics and this document need none."));
    components.add_security_scheme(BEARER, SecurityScheme::Http(bearer));
    let problem_types: serde_json::Map<String, serde_json::Value> = PUBLIC_TYPE_DOCS
        .iter()
        .map(|(uri, when)| ((*uri).to_owned(), (*when).into()))
        .collect();
    let extensions = document.extensions.get_or_insert_with(Extensions::default);
    extensions.insert("x-problem-types".to_owned(), problem_types.into());
    document
}

/// The document as served: pretty JSON with a final newline.
pub fn to_json(document: &OpenApi) -> String {
    let mut text = document.to_pretty_json().expect("an OpenAPI document serializes");
    text.push('\n');
    text
}

fn sequence_name() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(SEQUENCE_PATTERN))
}

/// `sequences` of a subscription: null, or a list of sequence names.
pub fn sequence_filter() -> impl Into<RefOr<Schema>> {
    ArrayBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::Array,
            Type::Null,
        ]))
        .items(sequence_name())
        .description(Some("Only these sequences; every sequence when null."))
}

/// `sequences` of a new subscription: null, or at least one name.
pub fn sequence_filter_request() -> impl Into<RefOr<Schema>> {
    ArrayBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::Array,
            Type::Null,
        ]))
        .items(sequence_name())
        .min_items(Some(1))
        .description(Some(
            "Only these sequences (at least one); every sequence when absent or null.",
        ))
}

/// `state` of a subscription.
pub fn subscription_state() -> impl Into<RefOr<Schema>> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["active", "failing", "disabled"]))
}
