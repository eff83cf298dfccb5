//! The learner's OpenAPI 3.1 document, generated from the code: the
//! subscription API from the handlers' `#[utoipa::path]` attributes in
//! `http.rs`, the schemas from the wire types in `crates/api`, the probes,
//! security scheme and problem types from [`api::openapi::finish`].
//!
//! Served at `GET /openapi.json` as `api::openapi::LEARNER`, the generated
//! text kept in `crates/api/openapi/learner.json`; the test below fails
//! when the two differ. Internal routes (`/v1/chosen`, `/v1/status`) are
//! left out: see `api::openapi::LEARNER_INTERNAL_ROUTES`.

use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "paxid learner",
        description = "Subscriptions to the allocations chosen by the cluster, delivered as signed \
            webhooks (Standard Webhooks) in slot order, at least once. Errors are \
            application/problem+json (RFC 9457); every problem `type` is listed under \
            `x-problem-types`."
    ),
    paths(
        super::create,
        super::list,
        super::show,
        super::remove,
        super::enable,
        super::replay,
        super::ping
    )
)]
struct LearnerApi;

/// The whole document, as served.
pub fn document() -> utoipa::openapi::OpenApi {
    api::openapi::finish(
        LearnerApi::openapi(),
        "--subscription-token: when set, the subscription API requires one of its tokens; unset, it is open.",
    )
}

#[cfg(test)]
mod tests {
    /// `PAXID_WRITE_OPENAPI=1 cargo test -p paxid-learner openapi` writes
    /// the served file again from the code.
    #[test]
    fn the_served_openapi_document_is_generated_from_the_code() {
        let generated = api::openapi::to_json(&super::document());
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../api/openapi/learner.json");
        if std::env::var_os("PAXID_WRITE_OPENAPI").is_some() {
            std::fs::write(path, &generated).expect("write the document");
            return;
        }
        assert!(
            generated == api::openapi::LEARNER,
            "{path} is not what the code generates; run \
             PAXID_WRITE_OPENAPI=1 cargo test --release -p paxid-learner openapi"
        );
    }
}
