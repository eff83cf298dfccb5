//! "Persist, then reply", checked on the real binary's system calls:
//! strace records the acceptor while a client sends accepts one at a time,
//! and every `accepted` answer written to a socket must come after an
//! fsync or fdatasync that started after the write-ahead-log write before
//! it and completed before the answer. (kill -9 cannot show a missing
//! fsync: the page cache survives the process. This shows the order.)
//!
//! One accept at a time, so the write before an answer is that answer's.
//! Needs `strace` (scripts/setup.sh installs it).

mod common;

use api::internal::{AcceptResponse, Ballot};
use common::{value_for, Client, Process};

const ACCEPTS: u64 = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_answer_follows_the_fsync_of_its_write() {
    assert!(
        std::process::Command::new("strace").arg("-V").output().is_ok(),
        "strace is missing: run scripts/setup.sh"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let trace = dir.path().join("strace.txt");
    let data = dir.path().join("data");
    let trace_arg = trace.to_string_lossy().into_owned();
    let wrapper = [
        "strace",
        "-f",
        "-y",
        "-s",
        "4096",
        "-e",
        "trace=write,writev,pwrite64,pwritev,pwritev2,sendto,sendmsg,fsync,fdatasync,sync_file_range",
        "-o",
        &trace_arg,
    ];
    let acceptor = Process::start_under(&wrapper, &data, &[]);
    let client = Client::new(&acceptor.url);
    client.found_alone().await;
    let ballot = Ballot {
        epoch: 0,
        round: 1,
        node: 1,
    };
    client.prepare(ballot, 0).await.expect("prepare");
    for slot in 0..ACCEPTS {
        let proposal = api::internal::Proposal {
            slot,
            value: value_for(slot),
        };
        let answer = client.accept(ballot, vec![proposal]).await.expect("accept");
        assert!(matches!(answer, AcceptResponse::Accepted { .. }), "{answer:?}");
    }
    acceptor.terminate_traced();
    let text = std::fs::read_to_string(&trace).expect("trace");
    let calls = parse(&text);
    let report = check(&calls);
    println!(
        "{} accepted answers, {} WAL writes, {} syncs; {} answers not preceded by the sync of their write",
        report.answers,
        report.wal_writes,
        report.syncs,
        report.violations.len()
    );
    assert!(
        report.answers >= ACCEPTS as usize && report.wal_writes > 0,
        "the trace did not record the answers and writes: {report:?}"
    );
    assert!(
        report.violations.is_empty(),
        "answers sent before their write was synced (trace lines): {:?}",
        &report.violations[..report.violations.len().min(10)]
    );
}

/// One system call as strace printed it, possibly across an
/// `<unfinished ...>` line and its `resumed` line.
#[derive(Debug)]
struct Call {
    name: String,
    /// The first argument with its path (`-y`), e.g. `12</d/000004.log>`.
    args: String,
    start: usize,
    end: usize,
}

fn parse(text: &str) -> Vec<Call> {
    let mut calls = Vec::new();
    let mut open: std::collections::HashMap<String, Call> = std::collections::HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let Some((pid, rest)) = line.trim_start().split_once(char::is_whitespace) else {
            continue;
        };
        let rest = rest.trim_start();
        if let Some(resumed) = rest.strip_prefix("<... ") {
            let name = resumed.split_whitespace().next().unwrap_or("");
            if let Some(mut call) = open.remove(pid) {
                if call.name == name {
                    call.args.push_str(resumed);
                    call.end = i;
                    calls.push(call);
                }
            }
            continue;
        }
        let Some((name, args)) = rest.split_once('(') else {
            continue;
        };
        let call = Call {
            name: name.to_owned(),
            args: args.to_owned(),
            start: i,
            end: i,
        };
        if rest.ends_with("<unfinished ...>") {
            open.insert(pid.to_owned(), call);
        } else {
            calls.push(call);
        }
    }
    calls.sort_by_key(|c| c.end);
    calls
}

#[derive(Debug, Default)]
struct Report {
    answers: usize,
    wal_writes: usize,
    syncs: usize,
    violations: Vec<usize>,
}

fn is_wal_write(call: &Call) -> bool {
    call.name.starts_with("write") || call.name.starts_with("pwrite")
}

fn check(calls: &[Call]) -> Report {
    let wal = |c: &&Call| is_wal_write(c) && c.args.split('>').next().is_some_and(|fd| fd.ends_with(".log"));
    let sync = |c: &&Call| matches!(c.name.as_str(), "fsync" | "fdatasync" | "sync_file_range");
    let answer = |c: &&Call| {
        (c.name.starts_with("write") || c.name.starts_with("send"))
            && c.args.contains("HTTP/1.1 200")
            && c.args.contains("accepted")
    };
    let mut report = Report {
        wal_writes: calls.iter().filter(wal).count(),
        syncs: calls.iter().filter(sync).count(),
        ..Report::default()
    };
    for reply in calls.iter().filter(answer) {
        report.answers += 1;
        let Some(write) = calls.iter().filter(wal).rfind(|w| w.end < reply.start) else {
            continue;
        };
        let synced = calls
            .iter()
            .filter(sync)
            .any(|s| s.start > write.end && s.end < reply.start);
        if !synced {
            report.violations.push(reply.start + 1);
        }
    }
    report
}
