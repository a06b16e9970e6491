//! The modules of src/ form no import cycle (DESIGN.md: error ← options ←
//! {state, backoff, heartbeat, queue} ← event ← {tls, transport} ← http ←
//! wires ← session ← client ← {ffi, jni}). Read from the source text: a module
//! depends on another when its non-test code names `crate::other`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// Top-level module → the top-level modules its non-test code names.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src.clone()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            for entry in fs::read_dir(&path).unwrap() {
                files.push(entry.unwrap().path());
            }
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let relative = path.strip_prefix(&src).unwrap();
        let top = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        // Test modules may reach anywhere; tests.rs files are test modules.
        if top == "lib" || relative.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = fs::read_to_string(&path).unwrap();
        let code = match text.find("#[cfg(test)]\nmod tests {") {
            Some(i) => &text[..i],
            None => &text[..],
        };
        let deps = graph.entry(top.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let name: String = code[i + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() && name != top {
                deps.insert(name);
            }
        }
    }
    graph
}

/// A cycle through `node`, if any, as the path that closes it.
fn find_cycle(
    graph: &BTreeMap<String, BTreeSet<String>>,
    node: &str,
    path: &mut Vec<String>,
    done: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    if let Some(start) = path.iter().position(|n| n == node) {
        let mut cycle = path[start..].to_vec();
        cycle.push(node.to_string());
        return Some(cycle);
    }
    if done.contains(node) {
        return None;
    }
    path.push(node.to_string());
    for next in graph.get(node).into_iter().flatten() {
        if let Some(cycle) = find_cycle(graph, next, path, done) {
            return Some(cycle);
        }
    }
    path.pop();
    done.insert(node.to_string());
    None
}

#[test]
fn src_has_no_import_cycle() {
    let graph = module_graph();
    assert!(graph.contains_key("session") && graph.contains_key("wire"));
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = find_cycle(&graph, node, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", cycle.join(" → "));
        }
    }
}

#[test]
fn the_layers_point_down() {
    let graph = module_graph();
    let uses = |a: &str, b: &str| graph.get(a).is_some_and(|d| d.contains(b));
    // Pure logic knows no I/O layer.
    for pure in [
        "error",
        "state",
        "backoff",
        "heartbeat",
        "options",
        "queue",
        "frame",
    ] {
        for io in [
            "session",
            "wire",
            "http",
            "transport",
            "tls",
            "client",
            "runtime",
        ] {
            assert!(!uses(pure, io), "{pure} uses {io}");
        }
    }
    assert!(
        !uses("state", "options"),
        "the state machine has its own policy"
    );
    assert!(!uses("wire", "session"), "wires know nothing of the driver");
    // The HTTP client sits under the wires, over the transport.
    for above in ["wire", "session", "client", "ffi", "jni"] {
        assert!(!uses("http", above), "http uses {above}");
    }
    for below in ["transport", "tls", "event"] {
        assert!(!uses(below, "http"), "{below} uses http");
    }
    assert!(
        !uses("session", "client"),
        "the driver knows nothing of the API"
    );
    assert!(
        !uses("session", "runtime"),
        "the driver is given its runtime"
    );
}
