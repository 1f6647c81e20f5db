//! API conformance: schemathesis (pinned in scripts/requirements.txt, which the README's test
//! command installs) against the running server's `/openapi.json`, with every check, a bounded
//! number of examples per operation, and the stateful phase following the document's links
//! from `POST /v1/jobs` to the routes that take `{id}`. It must find no failure.
//!
//! The server contacts nothing but its loopback peers: `--fetch-sources 127.0.0.1` refuses
//! every other host before any lookup, and loopback itself is refused by the SSRF guard, so
//! the URLs and callbacks that schemathesis makes up are never fetched.

mod common;

use common::server::*;

const ADMIN_TOKEN: &str = "conformance-admin-token";
/// Examples per operation and phase; with the coverage phase's boundary cases this is a few
/// thousand requests, about a minute here.
const MAX_EXAMPLES: &str = "30";

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_failures() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(
        dir.path(),
        &[
            "--workers",
            "2",
            "--admin-token",
            ADMIN_TOKEN,
            "--fetch-sources",
            "127.0.0.1",
        ],
    )
    .await;
    let report = dir.path().join("schemathesis.json");
    let spec = format!("{}/openapi.json", s.url);
    let auth = format!("Authorization: Bearer {ADMIN_TOKEN}");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis.toml");
    let args = [
        "--config-file",
        config,
        "run",
        &spec,
        "--checks",
        "all",
        "--max-examples",
        MAX_EXAMPLES,
        "--seed",
        "12",
        // One worker: hypothesis's lambda descriptions are not thread-safe on CPython 3.11
        // ("AST constructor recursion depth mismatch").
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--generation-database",
        "none",
        "--no-color",
        "--header",
        &auth,
        "--report",
        "json",
        "--report-json-path",
        report.to_str().unwrap(),
    ];
    let out = tokio::process::Command::new("schemathesis")
        .args(args)
        // It keeps state in `.schemathesis/` under its working directory.
        .current_dir(dir.path())
        .output()
        .await
        .expect("schemathesis runs (pip install -r scripts/requirements.txt)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "schemathesis found failures:\n{stdout}");
    // "Test cases:\n  1474 generated, 1474 passed, 8 skipped": every generated case passed.
    let counts = stdout
        .split("Test cases:")
        .nth(1)
        .and_then(|rest| rest.lines().map(str::trim).find(|l| !l.is_empty()))
        .unwrap_or_default()
        .to_string();
    let number = |word: &str| -> u64 {
        counts
            .split(',')
            .find_map(|part| part.trim().strip_suffix(word)?.trim().parse().ok())
            .unwrap_or(0)
    };
    assert!(number("generated") > 500, "too few test cases ran: {counts:?}");
    assert_eq!(number("passed"), number("generated"), "{counts}");
    // Every phase ran, the stateful one (links between operations) included: a phase that was
    // skipped or errored would pass without testing anything.
    let phases = stdout
        .split("Test Phases:")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .unwrap_or_default();
    for phase in ["Examples", "Coverage", "Fuzzing", "Stateful"] {
        assert!(
            phases.lines().any(|l| l.contains('✅') && l.contains(phase)),
            "the {phase} phase did not run and pass:\n{phases}"
        );
    }
    // Cases schemathesis could not build (it skips them) stay few: a schema it cannot use
    // would otherwise pass unseen.
    let skipped = number("skipped");
    assert!(
        skipped * 50 <= number("generated"),
        "{skipped} of {} cases were skipped: {counts}",
        number("generated")
    );
    println!("schemathesis: {counts}");
    s.stop().await;
}
