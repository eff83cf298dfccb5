//! The sequencer's OpenAPI 3.1 document, generated from the code: the
//! operations from the handlers' `#[utoipa::path]` attributes in
//! `http.rs`, the schemas from the wire types in `crates/api`, the probes,
//! security scheme and problem types from [`api::openapi::finish`].
//!
//! Served at `GET /openapi.json` as `api::openapi::SEQUENCER`, the
//! generated text kept in `crates/api/openapi/sequencer.json`; the test
//! below fails when the two differ. Internal routes (`/v1/status`,
//! `/v1/acceptors`) are left out: see `api::openapi::SEQUENCER_INTERNAL_ROUTES`.

use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "paxid sequencer",
        description = "POST /next-id hands out IDs unique forever and strictly increasing in real time. \
            Any replica answers; followers forward to the leader. Errors are application/problem+json \
            (RFC 9457); every problem `type` is listed under `x-problem-types`."
    ),
    paths(super::next_id)
)]
struct SequencerApi;

/// The whole document, as served.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut document = SequencerApi::openapi();
    // The body of `POST /next-id` may be left out (defaults), but when sent
    // it is an object: `null` is refused like any non-object (422). utoipa
    // spells an optional body `Option<T>`, which would also allow `null`,
    // so the body is declared `T` and made optional here.
    let body = document
        .paths
        .paths
        .get_mut("/next-id")
        .and_then(|item| item.post.as_mut())
        .and_then(|operation| operation.request_body.as_mut());
    if let Some(utoipa::openapi::RefOr::T(body)) = body {
        body.required = Some(utoipa::openapi::Required::False);
    }
    api::openapi::finish(
        document,
        "--client-token: when set, POST /next-id requires one of its tokens; unset, it is open.",
    )
}

#[cfg(test)]
mod tests {
    /// `PAXID_WRITE_OPENAPI=1 cargo test -p paxid-sequencer openapi` writes
    /// the served file again from the code.
    #[test]
    fn the_served_openapi_document_is_generated_from_the_code() {
        let generated = api::openapi::to_json(&super::document());
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../api/openapi/sequencer.json");
        if std::env::var_os("PAXID_WRITE_OPENAPI").is_some() {
            std::fs::write(path, &generated).expect("write the document");
            return;
        }
        assert!(
            generated == api::openapi::SEQUENCER,
            "{path} is not what the code generates; run \
             PAXID_WRITE_OPENAPI=1 cargo test --release -p paxid-sequencer openapi"
        );
    }
}
