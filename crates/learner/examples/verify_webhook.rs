//! A paxid webhook receiver in Rust: verifies each message per Standard
//! Webhooks (signature and a 5-minute timestamp tolerance), answers 204
//! only to a valid one, deduplicates by slot, and appends one JSON line per
//! request to a file. The contract is in `docs/webhooks.md`; the same
//! receiver in Python and Node is in `examples/webhooks/`, and
//! `tests/tests/webhooks.rs` runs all three against a real learner.
//!
//! ```sh
//! cargo build --release -p paxid-learner --example verify_webhook
//! WEBHOOK_SECRET=whsec_... target/release/examples/verify_webhook 127.0.0.1:9000 received.jsonl
//! ```
//!
//! The verification itself ([`verify`]) needs only `hmac`, `sha2` and
//! `base64`; copy it into your own service.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Standard Webhooks: refuse a `webhook-timestamp` further than this from now.
const TOLERANCE_S: i64 = 5 * 60;

/// Why a message is refused.
#[derive(Debug)]
pub enum Refused {
    MissingHeader(&'static str),
    BadTimestamp,
    /// Older or newer than the tolerance: a replayed capture, or a bad clock.
    OutsideTolerance {
        age_s: i64,
    },
    BadSignature,
}

/// Checks one request: `secret` is the subscription's `whsec_...`, `now_s`
/// the receiver's clock in unix seconds. `body` must be the exact bytes
/// received (verify before parsing; re-serialized JSON will not match).
pub fn verify(secret: &str, headers: &HeaderMap, body: &[u8], now_s: i64) -> Result<(), Refused> {
    let header = |name: &'static str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or(Refused::MissingHeader(name))
    };
    let id = header("webhook-id")?;
    let timestamp = header("webhook-timestamp")?;
    let signatures = header("webhook-signature")?;
    let ts: i64 = timestamp.parse().map_err(|_| Refused::BadTimestamp)?;
    if (now_s - ts).abs() > TOLERANCE_S {
        return Err(Refused::OutsideTolerance { age_s: now_s - ts });
    }
    let key = secret
        .strip_prefix("whsec_")
        .and_then(|encoded| STANDARD.decode(encoded).ok())
        .expect("WEBHOOK_SECRET is a whsec_ secret");
    // Several space-separated `v1,<base64>` entries may come (key rotation);
    // one matching is enough. `verify_slice` compares in constant time.
    let valid = signatures
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|sig| STANDARD.decode(sig).ok())
        .any(|sig| {
            let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.as_bytes());
            mac.update(b".");
            mac.update(body);
            mac.verify_slice(&sig).is_ok()
        });
    if valid {
        Ok(())
    } else {
        Err(Refused::BadSignature)
    }
}

struct Receiver {
    secret: String,
    /// The output file and the first slot not yet processed. A real
    /// receiver keeps this mark in its own database, in the same
    /// transaction as the IDs it records.
    state: Mutex<(std::fs::File, u64)>,
}

async fn receive(State(receiver): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let now_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let webhook_id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mut state = receiver.state.lock().unwrap_or_else(|p| p.into_inner());
    let (line, status) = match verify(&receiver.secret, &headers, &body, now_s) {
        Err(reason) => (
            serde_json::json!({"accepted": false, "webhook_id": webhook_id, "reason": format!("{reason:?}")}),
            StatusCode::UNAUTHORIZED,
        ),
        Ok(()) => match serde_json::from_slice::<serde_json::Value>(&body) {
            Err(error) => (
                serde_json::json!({"accepted": false, "webhook_id": webhook_id, "reason": error.to_string()}),
                StatusCode::BAD_REQUEST,
            ),
            Ok(message) => {
                let next_slot = &mut state.1;
                let mut new_slots = Vec::new();
                match message["type"].as_str() {
                    Some("ids.allocated") => {
                        for slot in message["data"]["slots"].as_array().into_iter().flatten() {
                            let Some(number) = slot["slot"].as_u64() else {
                                continue;
                            };
                            // Slots come in order: one below the mark was
                            // processed already (a retry or a replay).
                            if number >= *next_slot {
                                new_slots.push(number);
                                *next_slot = number + 1;
                            }
                        }
                    }
                    Some("ids.gap") => {
                        // Slots from_slot..below_slot will never come.
                        if let Some(below) = message["data"]["below_slot"].as_u64() {
                            *next_slot = (*next_slot).max(below);
                        }
                    }
                    // Unknown types: acknowledge and ignore (new ones may come).
                    _ => {}
                }
                let line = serde_json::json!({
                    "accepted": true,
                    "webhook_id": webhook_id,
                    "type": message["type"],
                    "new_slots": new_slots,
                    "body": String::from_utf8_lossy(&body),
                });
                (line, StatusCode::NO_CONTENT)
            }
        },
    };
    // Written (and flushed) before answering: what was acknowledged is kept.
    // One write per line, so a reader never sees half of one.
    let file = &mut state.0;
    if file
        .write_all(format!("{line}\n").as_bytes())
        .and_then(|()| file.flush())
        .is_err()
    {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    status
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(out)) = (args.next(), args.next()) else {
        eprintln!("usage: WEBHOOK_SECRET=whsec_... verify_webhook HOST:PORT OUT_FILE");
        std::process::exit(2);
    };
    let secret = std::env::var("WEBHOOK_SECRET").expect("WEBHOOK_SECRET is set");
    let file = std::fs::OpenOptions::new().create(true).append(true).open(out)?;
    let receiver = Arc::new(Receiver {
        secret,
        state: Mutex::new((file, 0)),
    });
    let app = Router::new().fallback(receive).with_state(receiver);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!("verify_webhook listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await
}
