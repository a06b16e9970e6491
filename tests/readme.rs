//! README.md shows the examples as they are in the files that the tests
//! compile and run (examples/c/echo.c and examples/c/sse.c by
//! tests/c_abi.rs, the Kotlin ones by the Kotlin suite). This keeps the README true.

fn read(path: &str) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    std::fs::read_to_string(format!("{root}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_c_example_is_the_one_the_tests_run() {
    let code = read("examples/c/echo.c");
    assert!(
        read("README.md").contains(code.trim()),
        "README.md differs from examples/c/echo.c"
    );
}

#[test]
fn the_socketio_c_example_is_the_one_the_tests_run() {
    let code = read("examples/c/socketio.c");
    assert!(
        read("README.md").contains(code.trim()),
        "README.md differs from examples/c/socketio.c"
    );
}

#[test]
fn the_c_sse_example_is_the_one_the_tests_run() {
    let code = read("examples/c/sse.c");
    assert!(
        read("README.md").contains(code.trim()),
        "README.md differs from examples/c/sse.c"
    );
}

#[test]
fn the_kotlin_example_is_the_one_the_tests_run() {
    let file = read("kotlin-multiplatform/src/jvmTest/kotlin/dev/tether/readme/ReadmeExample.kt");
    let body = &file[file.find("import ").expect("imports")..];
    assert!(
        read("README.md").contains(body.trim()),
        "README.md differs from ReadmeExample.kt"
    );
}

#[test]
fn the_testkit_example_is_the_one_the_tests_run() {
    let file =
        read("kotlin-multiplatform/testkit/src/test/kotlin/dev/tether/testkit/readme/ChatViewModelTest.kt");
    let body = &file[file.find("import ").expect("imports")..];
    assert!(
        read("README.md").contains(body.trim()),
        "README.md differs from the testkit's ChatViewModelTest.kt"
    );
}

#[test]
fn the_testkit_sse_example_is_the_one_the_tests_run() {
    let file = read(
        "kotlin-multiplatform/testkit/src/test/kotlin/dev/tether/testkit/readme/OrderStatusTest.kt",
    );
    let body = &file[file.find("import ").expect("imports")..];
    assert!(
        read("README.md").contains(body.trim()),
        "README.md differs from the testkit's OrderStatusTest.kt"
    );
}

#[test]
fn the_kotlin_socketio_example_is_the_one_the_tests_run() {
    let file =
        read("kotlin-multiplatform/src/jvmTest/kotlin/dev/tether/readme/ReadmeSocketIoExample.kt");
    let body = &file[file.find("import ").expect("imports")..];
    assert!(
        read("README.md").contains(body.trim()),
        "README.md differs from ReadmeSocketIoExample.kt"
    );
}

#[test]
fn the_kotlin_sse_example_is_the_one_the_tests_run() {
    let file =
        read("kotlin-multiplatform/src/jvmTest/kotlin/dev/tether/readme/ReadmeSseExample.kt");
    let body = &file[file.find("import ").expect("imports")..];
    assert!(
        read("README.md").contains(body.trim()),
        "README.md differs from ReadmeSseExample.kt"
    );
}
