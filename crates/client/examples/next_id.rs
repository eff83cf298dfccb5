//! `cargo run -p paxid-client --example next_id -- http://127.0.0.1:8080 [SEQUENCE] [COUNT]`
//!
//! Asks for IDs through the client library: 16 concurrent callers of one
//! sequence, then prints what each got and how many HTTP calls they shared.
//! The token, if the sequencers have `--client-token`, comes from
//! `PAXID_CLIENT_TOKEN`.

use paxid_client::Client;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let endpoints: Vec<String> = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8080".into())
        .split(',')
        .map(str::to_owned)
        .collect();
    let sequence = args
        .next()
        .unwrap_or_else(|| paxid_client::DEFAULT_SEQUENCE.into());
    let count: u64 = args.next().map(|c| c.parse()).transpose()?.unwrap_or(1);

    let mut builder = Client::builder().endpoints(endpoints);
    if let Ok(token) = std::env::var("PAXID_CLIENT_TOKEN") {
        builder = builder.token(token);
    }
    let client = builder.build();

    let callers: Vec<_> = (0..16)
        .map(|_| {
            let (client, sequence) = (client.clone(), sequence.clone());
            tokio::spawn(async move { client.next_id(&sequence, count).await })
        })
        .collect();
    for (i, caller) in callers.into_iter().enumerate() {
        match caller.await? {
            Ok(ids) => println!("caller {i:2}: {} {}..={}", ids.sequence, ids.first, ids.last()),
            Err(e) => {
                if let Some(problem) = e.problem() {
                    eprintln!("caller {i:2}: {} {}", problem.status, problem.type_);
                }
                eprintln!("caller {i:2}: {e}");
            }
        }
    }
    let stats = client.stats();
    println!(
        "{} callers shared {} calls ({} HTTP requests)",
        stats.callers, stats.calls, stats.http_requests
    );
    Ok(())
}
