//! An Autobahn TestSuite client built on Tether's public Rust API.
//!
//! Runs the fuzzing server's client protocol against `$AUTOBAHN_URL`
//! (default `ws://127.0.0.1:9001`) as agent `$AUTOBAHN_AGENT` (default
//! `tether`): `/getCaseCount`, then `/runCase?case=N&agent=A` for each case,
//! echoing every text and binary message back until the connection ends,
//! then `/updateReports?agent=A`. `scripts/autobahn.sh` starts the server
//! and runs this.
//!
//! Exit status: 0 when every case ran to its end and the reports were
//! updated; 1 otherwise. The verdicts themselves are in the suite's report.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use tether::{Client, Event, Options};

/// Options for a conformance run: one connection per case, no reconnect,
/// no heartbeat Pings of our own (they would show up in the suite's
/// transcripts), limits above the 16 MiB messages of cases 9.*.
const OPTIONS: &str = r#"{
    "reconnect": {"enabled": false},
    "ping_interval_ms": 0,
    "connect_timeout_ms": 5000,
    "close_timeout_ms": 1000,
    "max_message_bytes": 33554432,
    "max_frame_bytes": 33554432,
    "max_unpolled_bytes": 67108864,
    "queue": {"max_messages": 100000, "max_bytes": 67108864}
}"#;

/// Longest a single case may take (the slowest, 9.*, take a few seconds).
const CASE_TIMEOUT: Duration = Duration::from_secs(60);
/// The suite has about 500 cases with compression; more means nonsense.
const MAX_CASES: u32 = 10_000;

fn main() -> ExitCode {
    let url = std::env::var("AUTOBAHN_URL").unwrap_or_else(|_| "ws://127.0.0.1:9001".into());
    let url = url.trim_end_matches('/');
    let agent = std::env::var("AUTOBAHN_AGENT").unwrap_or_else(|_| "tether".into());
    let options = match Options::from_json(Some(OPTIONS)) {
        Ok(options) => options,
        Err(e) => return fail(&format!("bad options: {e}")),
    };

    let count = match run(&format!("{url}/getCaseCount"), &options, Reply::Ignore) {
        Ok(run) => match run.texts.first().map(|t| t.trim().parse::<u32>()) {
            Some(Ok(n)) if n <= MAX_CASES => n,
            other => return fail(&format!("getCaseCount answered {other:?}")),
        },
        Err(e) => return fail(&format!("getCaseCount: {e}")),
    };
    eprintln!("autobahn_client: {count} cases as agent {agent:?}");

    let started = Instant::now();
    let mut problems = 0;
    for case in 1..=count {
        let case_url = format!("{url}/runCase?case={case}&agent={agent}");
        match run(&case_url, &options, Reply::Echo) {
            Ok(run) => {
                if std::env::var_os("AUTOBAHN_VERBOSE").is_some() {
                    eprintln!(
                        "case {case}: {} messages echoed, closed {:?}, {:?}",
                        run.echoed, run.closed, run.took
                    );
                }
            }
            Err(e) => {
                problems += 1;
                eprintln!("case {case}: {e}");
            }
        }
    }
    eprintln!(
        "autobahn_client: ran {count} cases in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    if let Err(e) = run(
        &format!("{url}/updateReports?agent={agent}"),
        &options,
        Reply::Ignore,
    ) {
        return fail(&format!("updateReports: {e}"));
    }
    if problems > 0 {
        return fail(&format!("{problems} cases did not run to their end"));
    }
    ExitCode::SUCCESS
}

fn fail(message: &str) -> ExitCode {
    eprintln!("autobahn_client: {message}");
    ExitCode::FAILURE
}

#[derive(Clone, Copy, PartialEq)]
enum Reply {
    Echo,
    Ignore,
}

/// What one connection did.
#[derive(Debug, Default)]
struct Run {
    texts: Vec<String>,
    echoed: usize,
    closed: Option<(u16, String)>,
    took: Duration,
}

/// Opens one connection and polls it to `Terminated`, echoing messages
/// back if asked. Fails only when the client could not be driven (the
/// connection refused, or no end within `CASE_TIMEOUT`): a case the peer
/// ends with a protocol error is a normal end here.
fn run(url: &str, options: &Options, reply: Reply) -> Result<Run, String> {
    let started = Instant::now();
    let mut deadline = started + CASE_TIMEOUT;
    let client = Client::connect(url, options.clone()).map_err(|e| e.to_string())?;
    let mut run = Run::default();
    let mut opened = false;
    let mut errors = Vec::new();
    let mut closing = false;
    loop {
        let now = Instant::now();
        if now >= deadline {
            if closing {
                return Err(format!(
                    "no end within {CASE_TIMEOUT:?}: {}",
                    errors.join("; ")
                ));
            }
            // Ask for an end and give it a little longer to come.
            closing = true;
            deadline = now + Duration::from_secs(5);
            let _ = client.close(1000, "");
            continue;
        }
        let wait = (deadline - now).min(Duration::from_secs(1));
        let event = match client.poll_event(Some(wait)) {
            Ok(Some(event)) => event,
            Ok(None) => continue,
            Err(e) => return Err(e.to_string()),
        };
        match event {
            Event::Open { .. } => opened = true,
            Event::Text(text) if reply == Reply::Echo => {
                if let Err(e) = client.send_text(&text) {
                    errors.push(e.to_string());
                }
                run.echoed += 1;
            }
            Event::Text(text) => run.texts.push(text.to_string()),
            Event::Binary(data) if reply == Reply::Echo => {
                if let Err(e) = client.send_binary(&data) {
                    errors.push(e.to_string());
                }
                run.echoed += 1;
            }
            Event::Closed { code, reason } => run.closed = Some((code, reason)),
            Event::Error { message, .. } => errors.push(message),
            Event::Terminated => break,
            // State changes, and binary messages when not echoing.
            _ => {}
        }
    }
    run.took = started.elapsed();
    if !opened {
        return Err(format!("never opened: {}", errors.join("; ")));
    }
    if closing {
        return Err(format!("timed out after {CASE_TIMEOUT:?}"));
    }
    Ok(run)
}
