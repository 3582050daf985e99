//! The OpenAPI document as the running server serves it, checked by a
//! standard validator (Python's `openapi-spec-validator`) rather than by our
//! own reading of the specification.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::Server;

/// Reads the document on stdin and prints one line per error; exits 1 when
/// there is any. The 3.1 validator is named so that a document that drifts
/// to another version fails instead of being checked by other rules.
const VALIDATE: &str = "
import json, sys
from openapi_spec_validator import OpenAPIV31SpecValidator
errors = list(OpenAPIV31SpecValidator(json.load(sys.stdin)).iter_errors())
for error in errors:
    print('/'.join(str(p) for p in error.absolute_path) or '(root)', ':', error.message)
sys.exit(1 if errors else 0)
";

/// Whether `python3` runs and has the validator; says why not otherwise.
fn validator_missing() -> Option<String> {
    match Command::new("python3")
        .args(["-c", "import openapi_spec_validator"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(status) if status.success() => None,
        Ok(_) => Some("the python3 package openapi-spec-validator is not installed".to_string()),
        Err(e) => Some(format!("python3 cannot be run: {e}")),
    }
}

#[test]
#[ignore = "needs Python's openapi-spec-validator (bash .ci/run installs it)"]
fn served_openapi_document_passes_a_standard_validator() {
    if let Some(why) = validator_missing() {
        common::missing_tool("openapi-spec-validator", &why);
    }
    let server = Server::start();
    let response = server.request("GET", "/openapi.json", None, None);
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert!(response.json()["openapi"].as_str().unwrap().starts_with("3.1."));

    let mut python = Command::new("python3")
        .args(["-c", VALIDATE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python3");
    python
        .stdin
        .take()
        .unwrap()
        .write_all(&response.body)
        .expect("send the document");
    let output = python.wait_with_output().expect("run the validator");
    assert!(
        output.status.success(),
        "openapi.json is not valid OpenAPI 3.1:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
