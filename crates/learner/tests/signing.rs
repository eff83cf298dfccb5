//! The webhook signatures checked by an implementation independent of
//! ours: the PyPI `standardwebhooks` package (see
//! `support::python_verifies`) and the Rust verifier `support::verify`.

mod support;

use support::*;

#[test]
fn standardwebhooks_rejects_a_tampered_body() {
    // Proves the Python check can fail: a body changed after signing.
    let key = paxid_learner::signing::SigningKey::from_secret("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")
        .expect("secret");
    let ts = paxid_learner::delivery::now_ms() / 1000;
    let mut headers = HeaderMap::new();
    headers.insert("webhook-id", "msg_x".parse().expect("value"));
    headers.insert("webhook-timestamp", ts.to_string().parse().expect("value"));
    headers.insert(
        "webhook-signature",
        key.sign("msg_x", ts, b"{\"a\":1}").parse().expect("value"),
    );
    let good = Received {
        path: "/".into(),
        headers: headers.clone(),
        body: Bytes::from_static(b"{\"a\":1}"),
        at: Instant::now(),
    };
    python_verifies("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", &good);
    let tampered = Received {
        body: Bytes::from_static(b"{\"a\":2}"),
        ..good
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        python_verifies("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", &tampered)
    }));
    let python_available = std::process::Command::new("python3")
        .args(["-c", "import standardwebhooks"])
        .status()
        .is_ok_and(|s| s.success());
    if python_available {
        assert!(result.is_err(), "a tampered body must not verify");
    }
    assert!(
        !verify("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", &tampered),
        "nor with the Rust verifier"
    );
}
