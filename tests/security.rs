//! TLS trust, pinning, cleartext policy, proxies and logging, against TLS
//! servers on 127.0.0.1 with certificates made in the test.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::connect_proxy::ConnectProxy;
use support::pki::TestCa;
use support::{error_codes, poll_until, wait_open, EchoServer};
use tether::{error_code, Client, Error, Event, Options};

const T: Duration = Duration::from_secs(15);

fn options(json: &str) -> Options {
    Options::from_json(Some(json)).unwrap()
}

fn trusting(ca: &TestCa, extra: &str) -> Options {
    options(&format!(
        r#"{{"tls": {{"extra_ca_pem": {}{extra}}}, "reconnect": {{"initial_delay_ms": 10, "max_delay_ms": 20}}}}"#,
        serde_json::to_string(&ca.pem).unwrap()
    ))
}

fn echo_once(client: &Client) {
    client.send_text("over tls").unwrap();
    let ev = poll_until(client, T, |e| matches!(e, Event::Text(_)));
    assert!(matches!(ev.last(), Some(Event::Text(t)) if t.as_str() == "over tls"));
}

/// A configuration failure: one error, no retry, terminated.
fn expect_config_failure(client: &Client, code: i32) {
    let ev = poll_until(client, T, |e| *e == Event::Terminated);
    assert_eq!(error_codes(&ev), vec![code], "{ev:?}");
    assert!(
        !ev.iter().any(|e| matches!(e, Event::Reconnecting { .. })),
        "{ev:?}"
    );
}

#[test]
fn a_server_signed_by_an_extra_ca_is_trusted() {
    let ca = TestCa::new("Tether Test CA");
    let server = EchoServer::start_tls(ca.server(&["127.0.0.1"]).config);
    let client = Client::connect(&server.tls_url("127.0.0.1"), trusting(&ca, "")).unwrap();
    wait_open(&client);
    echo_once(&client);
}

#[test]
fn an_untrusted_server_fails_once_without_a_retry_storm() {
    let ca = TestCa::new("Tether Test CA");
    let stranger = TestCa::new("Someone Else");
    let server = EchoServer::start_tls(stranger.server(&["127.0.0.1"]).config);
    // Not trusted by the bundled roots either.
    let client = Client::connect(
        &server.tls_url("127.0.0.1"),
        options(r#"{"reconnect": {"initial_delay_ms": 10}}"#),
    )
    .unwrap();
    expect_config_failure(&client, error_code::TLS_UNTRUSTED);
    let client = Client::connect(&server.tls_url("127.0.0.1"), trusting(&ca, "")).unwrap();
    expect_config_failure(&client, error_code::TLS_UNTRUSTED);
}

#[test]
fn a_certificate_for_another_host_fails() {
    let ca = TestCa::new("Tether Test CA");
    let server = EchoServer::start_tls(ca.server(&["other.example"]).config);
    let client = Client::connect(&server.tls_url("127.0.0.1"), trusting(&ca, "")).unwrap();
    expect_config_failure(&client, error_code::TLS_HOSTNAME);
}

#[test]
fn an_expired_certificate_fails() {
    let ca = TestCa::new("Tether Test CA");
    let server = EchoServer::start_tls(ca.expired_server(&["127.0.0.1"]).config);
    let client = Client::connect(&server.tls_url("127.0.0.1"), trusting(&ca, "")).unwrap();
    expect_config_failure(&client, error_code::TLS_EXPIRED);
}

#[test]
fn a_matching_pin_passes_and_a_wrong_pin_fails() {
    let ca = TestCa::new("Tether Test CA");
    let cert = ca.server(&["127.0.0.1"]);
    let pin = tether::spki_sha256_base64(&cert.der).unwrap();
    let server = EchoServer::start_tls(cert.config);

    let pinned = format!(
        r#", "pin_sha256": ["sha256/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "sha256/{pin}"]"#
    );
    let client = Client::connect(&server.tls_url("127.0.0.1"), trusting(&ca, &pinned)).unwrap();
    wait_open(&client);
    echo_once(&client);

    let other = tether::spki_sha256_base64(&ca.server(&["127.0.0.1"]).der).unwrap();
    let wrong = format!(r#", "pin_sha256": ["{other}"]"#);
    let client = Client::connect(&server.tls_url("127.0.0.1"), trusting(&ca, &wrong)).unwrap();
    expect_config_failure(&client, error_code::TLS_PIN);
}

fn pin_option(certs: &[&[u8]]) -> String {
    let pins: Vec<String> = certs
        .iter()
        .map(|der| format!("\"sha256/{}\"", tether::spki_sha256_base64(der).unwrap()))
        .collect();
    format!(r#", "pin_sha256": [{}]"#, pins.join(", "))
}

/// A trusted server that appends an unrelated certificate carrying the
/// pinned key does not pass: the pin must be on the verified chain.
#[test]
fn a_pinned_certificate_merely_sent_along_is_refused() {
    let ca = TestCa::new("Tether Test CA");
    let unrelated = TestCa::new("Pinned Elsewhere CA");
    let server = EchoServer::start_tls(ca.server_sending(&["127.0.0.1"], &[&unrelated.der]).config);
    let client = Client::connect(
        &server.tls_url("127.0.0.1"),
        trusting(&ca, &pin_option(&[&unrelated.der])),
    )
    .unwrap();
    expect_config_failure(&client, error_code::TLS_PIN);
    // The same trick with a pinned intermediate of another chain.
    let other_root = TestCa::new("Other Root");
    let other_intermediate = other_root.intermediate("Other Intermediate");
    let server = EchoServer::start_tls(
        ca.server_sending(&["127.0.0.1"], &[&other_intermediate.der])
            .config,
    );
    let client = Client::connect(
        &server.tls_url("127.0.0.1"),
        trusting(&ca, &pin_option(&[&other_intermediate.der])),
    )
    .unwrap();
    expect_config_failure(&client, error_code::TLS_PIN);
}

/// root → intermediate → leaf, the server sending leaf and intermediate:
/// a pin on any of the three opens.
#[test]
fn a_pin_on_the_leaf_the_intermediate_or_the_root_of_the_chain_opens() {
    let root = TestCa::new("Tether Test Root");
    let intermediate = root.intermediate("Tether Test Intermediate");
    let leaf = intermediate.server_sending(&["127.0.0.1"], &[&intermediate.der]);
    let leaf_der = leaf.der.clone();
    let server = EchoServer::start_tls(leaf.config);
    for pinned in [&leaf_der, &intermediate.der, &root.der] {
        let client = Client::connect(
            &server.tls_url("127.0.0.1"),
            trusting(&root, &pin_option(&[pinned])),
        )
        .unwrap();
        wait_open(&client);
        echo_once(&client);
    }
    // A pin on nothing of this chain fails.
    let stranger = TestCa::new("Stranger");
    let client = Client::connect(
        &server.tls_url("127.0.0.1"),
        trusting(&root, &pin_option(&[&stranger.der])),
    )
    .unwrap();
    expect_config_failure(&client, error_code::TLS_PIN);
}

#[test]
fn platform_roots_with_an_extra_ca() {
    let ca = TestCa::new("Tether Test CA");
    let server = EchoServer::start_tls(ca.server(&["127.0.0.1"]).config);
    let client = Client::connect(
        &server.tls_url("127.0.0.1"),
        trusting(&ca, r#", "roots": "platform""#),
    )
    .unwrap();
    wait_open(&client);
    echo_once(&client);
}

#[test]
fn cleartext_can_be_forbidden() {
    let server = EchoServer::start();
    let err = Client::connect(&server.url(), options(r#"{"allow_insecure": false}"#)).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("allow_insecure")),
        "{err}"
    );
    // wss:// is what is left.
    let ca = TestCa::new("Tether Test CA");
    let tls_server = EchoServer::start_tls(ca.server(&["127.0.0.1"]).config);
    let mut tls_only = trusting(&ca, "");
    tls_only.allow_insecure = false;
    let client = Client::connect(&tls_server.tls_url("127.0.0.1"), tls_only).unwrap();
    wait_open(&client);
}

#[test]
fn a_connect_proxy_carries_ws_and_wss_with_credentials() {
    let server = EchoServer::start();
    // base64("user:pa ss")
    let proxy = ConnectProxy::start(Some("Basic dXNlcjpwYSBzcw=="));
    let via = |extra: &str| {
        options(&format!(
            r#"{{"proxy": "http://user:pa%20ss@{}"{extra}}}"#,
            proxy.addr
        ))
    };
    let client = Client::connect(&server.url(), via("")).unwrap();
    wait_open(&client);
    echo_once(&client);
    let target = server.addr.to_string();
    assert!(proxy.requests.lock().unwrap()[0].starts_with(&format!("CONNECT {target} HTTP/1.1")));

    let ca = TestCa::new("Tether Test CA");
    let tls_server = EchoServer::start_tls(ca.server(&["127.0.0.1"]).config);
    let pem = serde_json::to_string(&ca.pem).unwrap();
    let client = Client::connect(
        &tls_server.tls_url("127.0.0.1"),
        via(&format!(r#", "tls": {{"extra_ca_pem": {pem}}}"#)),
    )
    .unwrap();
    wait_open(&client);
    echo_once(&client);
}

#[test]
fn bad_proxy_credentials_are_a_configuration_error() {
    let server = EchoServer::start();
    let proxy = ConnectProxy::start(Some("Basic c29tZW9uZTplbHNl"));
    let client = Client::connect(
        &server.url(),
        options(&format!(
            r#"{{"proxy": "http://user:s3cret@{}"}}"#,
            proxy.addr
        )),
    )
    .unwrap();
    let ev = poll_until(&client, T, |e| *e == Event::Terminated);
    assert_eq!(error_codes(&ev), vec![error_code::PROXY], "{ev:?}");
    for e in &ev {
        assert!(!format!("{e:?}").contains("s3cret"), "secret leaked: {e:?}");
    }
}

#[test]
fn a_server_that_picks_none_of_the_subprotocols_is_an_error() {
    let server = EchoServer::start();
    let client = Client::connect(
        &server.url(),
        options(r#"{"subprotocols": ["unsupported.v1"]}"#),
    )
    .unwrap();
    expect_config_failure(&client, error_code::SUBPROTOCOL);
}

#[test]
fn oversized_frames_close_with_1009() {
    let server = EchoServer::start();
    let client = Client::connect(
        &server.url(),
        options(r#"{"max_frame_bytes": 1000, "reconnect": {"enabled": false}}"#),
    )
    .unwrap();
    wait_open(&client);
    client.send_binary(&[0u8; 5000]).unwrap();
    let ev = poll_until(&client, T, |e| *e == Event::Terminated);
    assert!(
        error_codes(&ev).contains(&error_code::MESSAGE_TOO_BIG),
        "{ev:?}"
    );
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Closed { code: 1009, .. })),
        "{ev:?}"
    );
}

#[test]
fn logs_reach_the_sink_without_header_values() {
    let lines: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let seen = lines.clone();
    tether::logging::set_sink(Some((
        tether::logging::Level::Debug,
        Arc::new(move |_, line: &str| seen.lock().unwrap().push(line.to_string())),
    )));
    let server = EchoServer::start();
    let client = Client::connect(
        &server.url(),
        options(r#"{"headers": {"Authorization": "Bearer s3cr3t-t0ken"}}"#),
    )
    .unwrap();
    wait_open(&client);
    client.close(1000, "").unwrap();
    poll_until(&client, T, |e| *e == Event::Terminated);
    tether::logging::set_sink(None);
    let lines = lines.lock().unwrap().clone();
    assert!(
        lines.iter().any(|l| l.contains("connecting to 127.0.0.1")),
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l.contains("open")), "{lines:?}");
    assert!(!lines.iter().any(|l| l.contains("s3cr3t")), "{lines:?}");
}
