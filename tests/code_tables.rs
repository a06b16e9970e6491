//! One source for every number: the statuses (`ws_status`), error codes
//! (`ws_error_code`), states (`ws_state`) and event kinds (`ws_event_kind`)
//! are declared once, as Rust enums (src/error.rs, src/ffi/mod.rs). The C
//! header is generated from them, the `error_code` constants and the JNI wire
//! format derive from them, and the Kotlin tables are checked against them
//! here, from the source text: a code added in Rust without its Kotlin twin
//! (or its `TetherError`) fails this test.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use tether::ffi::{ws_error_code, ws_event_kind, ws_state, ws_status};

/// The C ABI's enums and the files that declare them.
const ENUMS: [(&str, &str); 6] = [
    ("ws_status", "src/error.rs"),
    ("ws_error_code", "src/error.rs"),
    ("ws_state", "src/ffi/mod.rs"),
    ("ws_event_kind", "src/ffi/mod.rs"),
    ("sio_event_kind", "src/ffi/sio.rs"),
    ("sse_event_kind", "src/ffi/sse.rs"),
];

const KOTLIN: &str = "kotlin-multiplatform/src";
const CODES_KT: &str = "commonMain/kotlin/dev/tether/internal/Codes.kt";
const TETHER_ERROR_KT: &str = "commonMain/kotlin/dev/tether/TetherError.kt";
const SESSION_CORE_KT: &str = "commonMain/kotlin/dev/tether/internal/SessionCore.kt";
const JNI_BINDING_KT: &str = "jvmMain/kotlin/dev/tether/internal/JniBinding.kt";
/// The one event decoder of both bindings (JNI records and `ws_event` structs alike).
const EVENT_DECODER_KT: &str = "commonMain/kotlin/dev/tether/internal/Binding.kt";

fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn kotlin(path: &str) -> String {
    read(&format!("{KOTLIN}/{path}"))
}

/// An integer as Rust, C or Kotlin writes it: `-116`, `7`, `0x80`.
fn number(text: &str) -> Option<i64> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let value = match digits.strip_prefix("0x") {
        Some(hex) => i64::from_str_radix(hex, 16).ok()?,
        None => digits.parse().ok()?,
    };
    Some(if negative { -value } else { value })
}

/// The variants of a fieldless enum, in order, with their values (implicit
/// ones counted on from the previous, from 0). `lines` is the enum's body;
/// comments and attributes are skipped.
fn variants<'a>(lines: impl Iterator<Item = &'a str>, what: &str) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    let mut next = 0;
    for line in lines.map(str::trim) {
        let comment = ["//", "/*", "*", "#["].iter().any(|p| line.starts_with(p));
        if line.is_empty() || comment {
            continue;
        }
        let line = line.trim_end_matches(',');
        let (name, value) = match line.split_once('=') {
            Some((name, value)) => (
                name.trim(),
                number(value).unwrap_or_else(|| panic!("{what}: bad value in {line:?}")),
            ),
            None => (line, next),
        };
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{what}: cannot read {line:?}"
        );
        out.push((name.to_string(), value));
        next = value + 1;
    }
    assert!(!out.is_empty(), "{what}: no variants found");
    out
}

/// The variants of `pub enum name` in the Rust source `path`.
fn rust_enum(path: &str, name: &str) -> Vec<(String, i64)> {
    let text = read(path);
    let start = text
        .find(&format!("pub enum {name} {{\n"))
        .unwrap_or_else(|| panic!("{path}: no `pub enum {name}`"));
    let body = text[start..].lines().skip(1).take_while(|l| *l != "}");
    variants(body, &format!("{path}: {name}"))
}

/// The variants of `typedef enum { … } name;` in include/tether.h.
fn c_enum(header: &str, name: &str) -> Vec<(String, i64)> {
    let end = header
        .find(&format!("}} {name};"))
        .unwrap_or_else(|| panic!("include/tether.h: no enum {name}"));
    let start = header[..end]
        .rfind("typedef enum {")
        .unwrap_or_else(|| panic!("include/tether.h: no enum {name}"));
    let body = header[start..end].lines().skip(1);
    variants(body, &format!("include/tether.h: {name}"))
}

/// Every Rust enum of the C ABI, by name.
fn rust_enums() -> BTreeMap<&'static str, Vec<(String, i64)>> {
    ENUMS
        .iter()
        .map(|&(name, path)| (name, rust_enum(path, name)))
        .collect()
}

/// The value of `name` in `table`.
fn value(table: &[(String, i64)], name: &str) -> i64 {
    table
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("{name} not found"))
        .1
}

/// `Codes.X` names in `text` that start a `when` branch (`Codes.X ->`,
/// `Codes.X, Codes.Y ->`).
fn branches(text: &str, prefix: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in text.lines() {
        let Some((conditions, _)) = line.split_once("->") else {
            continue;
        };
        for condition in conditions.split(',') {
            if let Some(name) = condition.trim().strip_prefix(prefix) {
                names.push(name.to_string());
            }
        }
    }
    names
}

#[test]
fn the_source_reader_agrees_with_the_compiler() {
    let enums = rust_enums();
    let checks = [
        ("ws_status", "WS_OK", ws_status::WS_OK as i64),
        ("ws_status", "WS_TIMEOUT", ws_status::WS_TIMEOUT as i64),
        (
            "ws_status",
            "WS_ERR_INTERNAL",
            ws_status::WS_ERR_INTERNAL as i64,
        ),
        (
            "ws_error_code",
            "WS_ERROR_CONNECT",
            ws_error_code::WS_ERROR_CONNECT as i64,
        ),
        (
            "ws_error_code",
            "WS_ERROR_PROXY",
            ws_error_code::WS_ERROR_PROXY as i64,
        ),
        (
            "ws_state",
            "WS_STATE_CONNECTING",
            ws_state::WS_STATE_CONNECTING as i64,
        ),
        (
            "ws_state",
            "WS_STATE_CLOSED",
            ws_state::WS_STATE_CLOSED as i64,
        ),
        (
            "ws_event_kind",
            "WS_EVENT_STATE",
            ws_event_kind::WS_EVENT_STATE as i64,
        ),
        (
            "ws_event_kind",
            "WS_EVENT_TERMINATED",
            ws_event_kind::WS_EVENT_TERMINATED as i64,
        ),
    ];
    for (table, name, compiled) in checks {
        assert_eq!(value(&enums[table], name), compiled, "{table}::{name}");
    }
    assert_eq!(
        tether::error_code::PROXY,
        ws_error_code::WS_ERROR_PROXY as i32
    );
}

#[test]
fn the_header_matches_the_rust_declarations() {
    let header = read("include/tether.h");
    for (name, rust) in rust_enums() {
        assert_eq!(
            c_enum(&header, name),
            rust,
            "include/tether.h is stale for {name}: run scripts/gen-header.sh"
        );
    }
}

#[test]
fn every_error_code_has_its_rust_constant() {
    // src/error.rs: `pub const CONNECT: i32 = ws_error_code::WS_ERROR_CONNECT as i32;`
    let text = read("src/error.rs");
    let module = &text[text.find("pub mod error_code {").expect("mod error_code")..];
    let module = &module[..module.find("\n}\n").expect("end of mod error_code")];
    let mut consts = BTreeMap::new();
    for line in module.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix("pub const ") else {
            continue;
        };
        let (name, expr) = rest.split_once(": i32 = ").expect(line);
        consts.insert(name.to_string(), expr.trim_end_matches(';').to_string());
    }
    let mut problems = Vec::new();
    for (name, _) in rust_enum("src/error.rs", "ws_error_code") {
        let short = name.strip_prefix("WS_ERROR_").expect(&name);
        let expected = format!("ws_error_code::{name} as i32");
        match consts.remove(short) {
            Some(expr) if expr == expected => {}
            _ => problems.push(format!("want: pub const {short}: i32 = {expected};")),
        }
    }
    problems.extend(consts.keys().map(|name| format!("extra: {name}")));
    assert!(
        problems.is_empty(),
        "src/error.rs: tether::error_code needs one constant per ws_error_code, from it:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn kotlin_codes_match_rust() {
    let mut rust = BTreeMap::new();
    let mut order = Vec::new();
    for (_, variants) in rust_enums() {
        for (name, value) in variants {
            assert!(rust.insert(name.clone(), value).is_none(), "{name} twice");
            order.push(name);
        }
    }
    let text = kotlin(CODES_KT);
    let mut kt = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix("const val ") else {
            continue;
        };
        let (name, value) = rest.split_once(" = ").expect(line);
        let value = number(value).unwrap_or_else(|| panic!("{CODES_KT}: {line:?}"));
        assert!(kt.insert(name.to_string(), value).is_none(), "{name} twice");
    }
    let mut problems = Vec::new();
    for name in &order {
        match kt.get(name) {
            None => problems.push(format!("missing: const val {name} = {}", rust[name])),
            Some(v) if *v != rust[name] => problems.push(format!(
                "wrong: {name} is {v} in Kotlin, {} in Rust",
                rust[name]
            )),
            Some(_) => {}
        }
    }
    for name in kt.keys().filter(|n| !rust.contains_key(*n)) {
        problems.push(format!("extra: {name} is not in the Rust declarations"));
    }
    assert!(
        problems.is_empty(),
        "{KOTLIN}/{CODES_KT} differs from the Rust declarations:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn every_failure_has_its_tether_error() {
    let enums = rust_enums();
    let text = kotlin(TETHER_ERROR_KT);

    // Each class's own code: `public class Tls(message: String) : TetherError(message, Codes.WS_ERROR_TLS)`.
    let mut class_code = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        let Some((head, code)) = line.split_once(": TetherError(message, ") else {
            continue;
        };
        let class = head
            .trim()
            .strip_prefix("public class ")
            .and_then(|c| c.split('(').next())
            .unwrap_or_else(|| panic!("{TETHER_ERROR_KT}: cannot read {line:?}"));
        let code = code.trim_end_matches(')');
        match code.strip_prefix("Codes.") {
            Some(name) => {
                class_code.insert(class.to_string(), name.to_string());
            }
            // HttpStatus and Unknown carry the number they were given.
            None => assert!(
                ["status", "code"].contains(&code),
                "{TETHER_ERROR_KT}: {class} has the literal code {code}: name it from Codes"
            ),
        }
    }

    // `TetherError.of`: which codes map to which class.
    let of = &text[text.find("fun of(").expect("TetherError.of")..];
    let of = &of[..of
        .find("else ->")
        .expect("the else branch of TetherError.of")];
    let mut branch_class = BTreeMap::new();
    for line in of.lines().skip(1) {
        let Some((conditions, result)) = line.split_once("->") else {
            continue;
        };
        let class = result.trim().split('(').next().unwrap().to_string();
        let names: Vec<&str> = conditions.split(',').map(str::trim).collect();
        for condition in &names {
            match condition.strip_prefix("Codes.") {
                Some(name) => {
                    branch_class.insert(name.to_string(), (class.clone(), names.clone()));
                }
                None => assert_eq!(
                    *condition, "in 100..599",
                    "{TETHER_ERROR_KT}: TetherError.of: name codes from Codes, not {condition}"
                ),
            }
        }
    }

    let failures = enums["ws_status"]
        .iter()
        .filter(|(name, _)| name.starts_with("WS_ERR_"))
        .chain(&enums["ws_error_code"]);
    let mut problems = Vec::new();
    for (name, _) in failures {
        let Some((class, conditions)) = branch_class.get(name) else {
            problems.push(format!("TetherError.of has no branch for Codes.{name}"));
            continue;
        };
        // A class may stand for several codes (NULL_ARGUMENT is an
        // InvalidArgument), but its own code must be one of them.
        match class_code.get(class) {
            Some(own) if conditions.contains(&format!("Codes.{own}").as_str()) => {}
            own => problems.push(format!(
                "Codes.{name} gives TetherError.{class}, whose code is {own:?}"
            )),
        }
    }
    assert!(
        problems.is_empty(),
        "{KOTLIN}/{TETHER_ERROR_KT}:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn every_state_and_event_kind_is_decoded() {
    let enums = rust_enums();
    let cases = [
        (SESSION_CORE_KT, "ws_state", "Codes."),
        (EVENT_DECODER_KT, "ws_event_kind", "Codes."),
    ];
    for (file, table, prefix) in cases {
        let found = branches(&kotlin(file), prefix);
        for (name, _) in &enums[table] {
            assert!(
                found.contains(name),
                "{KOTLIN}/{file}: no `{prefix}{name} ->` branch"
            );
        }
    }
}

/// The number after `prefix` on a line of `text` (`const val HEADER = 20`,
/// `pub(crate) const PENDING: u8 = 0x80;`).
fn number_after(text: &str, prefix: &str) -> i64 {
    let rest = text
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}`"));
    number(rest.trim_end_matches(';')).unwrap_or_else(|| panic!("`{prefix}{rest}`"))
}

#[test]
fn the_jni_wire_format_has_no_numbering_of_its_own() {
    let wire = read("src/jni/wire.rs");
    let decoder = kotlin(JNI_BINDING_KT);
    // The record layout, the same on both sides.
    let header = "pub(crate) const HEADER: usize = ";
    let pending = "pub(crate) const PENDING: u8 = ";
    for (rust, kt) in [
        (header, "const val HEADER = "),
        (pending, "const val PENDING = "),
    ] {
        assert_eq!(
            number_after(&wire, rust),
            number_after(&decoder, kt),
            "src/jni/wire.rs `{rust}…` vs {JNI_BINDING_KT} `{kt}…`"
        );
    }
    // The kind byte: one constant per ws_event_kind, taken from it, below
    // the PENDING bit.
    let module = &wire[wire.find("pub(crate) mod kind {").expect("mod kind")..];
    let module = &module[..module.find("\n}\n").expect("end of mod kind")];
    let consts: Vec<&str> = module
        .lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix("pub(crate) const "))
        .collect();
    let kinds = rust_enum("src/ffi/mod.rs", "ws_event_kind");
    let expected: Vec<String> = kinds
        .iter()
        .map(|(name, _)| {
            let short = name.strip_prefix("WS_EVENT_").expect(name);
            format!("{short}: u8 = ws_event_kind::{name} as u8;")
        })
        .collect();
    assert_eq!(consts, expected, "src/jni/wire.rs: mod kind");
    let pending = number_after(&wire, pending);
    for (name, value) in &kinds {
        assert!(
            (0..pending).contains(value),
            "{name} = {value} collides with PENDING"
        );
    }
}
