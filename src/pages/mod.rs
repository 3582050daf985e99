//! The browser pages (`/` chat client, `/docs` API explorer), their script and
//! style assets, and the OpenAPI document, all compiled into the binary.
//!
//! Compiling them in with `include_bytes!` keeps the server one
//! self-contained file: the pages always match the API of the binary that
//! serves them, nothing depends on the working directory at run time, and no
//! request ever becomes a file-system path here, so there is nothing to
//! traverse. The set of assets is closed: `asset` answers only the names it
//! lists.
//!
//! The pages load nothing from another host and keep every script and style
//! in the files below (no inline `<script>`, `style=` or `on...=`), which is
//! what lets the server send the strict [`CONTENT_SECURITY_POLICY`].

use bytes::Bytes;

use crate::http::response::Response;

/// One static response body and the `Content-Type` to send it with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Asset {
    pub content_type: &'static str,
    pub body: &'static [u8],
}

impl Asset {
    /// Every page and asset goes out with the CSP and without sniffing;
    /// `no-cache` makes browsers revalidate, so an upgraded binary's pages
    /// are never mixed with an older script.
    pub(crate) fn into_response(self) -> Response {
        Response::bytes(200, self.content_type, Bytes::from_static(self.body))
            .header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
            .header("X-Content-Type-Options", "nosniff")
            .header("Referrer-Policy", "no-referrer")
            .header("Cache-Control", "no-cache")
    }
}

const HTML: &str = "text/html; charset=utf-8";
const JSON: &str = "application/json";
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Sent with every page. Scripts, styles and connections (fetch and the
/// WebSocket) are limited to this origin; `data:` images cover the empty
/// favicon the pages declare; `frame-ancestors 'none'` stops click-jacking.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'";

/// `GET /`: the chat client.
pub(crate) fn index() -> Asset {
    Asset {
        content_type: HTML,
        body: include_bytes!("index.html"),
    }
}

/// `GET /docs`: the interactive API page, rendered in the browser from
/// `/openapi.json`.
pub(crate) fn docs() -> Asset {
    Asset {
        content_type: HTML,
        body: include_bytes!("docs.html"),
    }
}

/// `GET /openapi.json`: the hand-written OpenAPI 3.1 description of every route.
pub(crate) fn openapi() -> Asset {
    Asset {
        content_type: JSON,
        body: include_bytes!("openapi.json"),
    }
}

/// `GET /assets/{name}`: the scripts and the style sheet of the two pages.
/// Any other name, including anything with a `/` or `..`, is `None`.
pub(crate) fn asset(name: &str) -> Option<Asset> {
    let (content_type, body): (&'static str, &'static [u8]) = match name {
        "chat.js" => (JAVASCRIPT, include_bytes!("chat.js")),
        "docs.js" => (JAVASCRIPT, include_bytes!("docs.js")),
        "style.css" => (CSS, include_bytes!("style.css")),
        _ => return None,
    };
    Some(Asset { content_type, body })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::routes::ROUTES;

    const ASSET_NAMES: [&str; 3] = ["chat.js", "docs.js", "style.css"];

    fn text(asset: Asset) -> &'static str {
        std::str::from_utf8(asset.body).expect("assets are UTF-8 text")
    }

    fn every_asset() -> Vec<(&'static str, Asset)> {
        let mut all = vec![
            ("index.html", index()),
            ("docs.html", docs()),
            ("openapi.json", openapi()),
        ];
        all.extend(
            ASSET_NAMES
                .iter()
                .map(|name| (*name, asset(name).expect("listed asset exists"))),
        );
        all
    }

    fn openapi_document() -> serde_json::Value {
        serde_json::from_slice(openapi().body).expect("openapi.json parses as JSON")
    }

    #[test]
    fn openapi_json_is_an_openapi_3_1_document() {
        let doc = openapi_document();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
        assert_eq!(doc["servers"][0]["url"], "/");
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes["bearerAuth"]["scheme"], "bearer");
        assert_eq!(schemes["cookieAuth"]["in"], "cookie");
        assert_eq!(schemes["cookieAuth"]["name"], "access_token");
    }

    /// Both directions: a route the router answers but the document does
    /// not describe is invisible to API users, and a documented operation
    /// that the router does not answer is a promise the server breaks.
    #[test]
    fn openapi_documents_exactly_the_routes_of_the_server() {
        let doc = openapi_document();
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in ["get", "put", "post", "patch", "delete", "head", "options", "trace"] {
                if item.get(method).is_some() {
                    documented.insert(format!("{} {path}", method.to_uppercase()));
                }
            }
        }
        let routed: BTreeSet<String> = ROUTES
            .iter()
            .map(|route| format!("{} {}", route.method.as_str(), route.pattern))
            .collect();
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(
            undocumented.is_empty(),
            "routes missing from openapi.json: {undocumented:?}"
        );
        assert!(
            unrouted.is_empty(),
            "operations in openapi.json that no route answers: {unrouted:?}"
        );
    }

    #[test]
    fn every_operation_documents_its_errors_as_json_detail() {
        let doc = openapi_document();
        let error_ref = "#/components/schemas/Error";
        let responses = &doc["components"]["responses"];
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let Some(codes) = op.get("responses").and_then(|r| r.as_object()) else {
                    continue;
                };
                assert!(codes.contains_key("405"), "{method} {path} lacks 405");
                for (code, response) in codes {
                    if !code.starts_with('4') && !code.starts_with('5') {
                        continue;
                    }
                    let response = match response["$ref"].as_str() {
                        Some(reference) => &responses[reference.rsplit('/').next().unwrap()],
                        None => response,
                    };
                    let schema = &response["content"]["application/json"]["schema"]["$ref"];
                    assert_eq!(schema, error_ref, "{method} {path} {code} is not an Error");
                }
            }
        }
    }

    #[test]
    fn every_asset_is_non_empty_with_its_content_type() {
        for (name, asset) in every_asset() {
            assert!(!asset.body.is_empty(), "{name} is empty");
            let expected = match name.rsplit('.').next().unwrap() {
                "html" => HTML,
                "json" => JSON,
                "js" => JAVASCRIPT,
                "css" => CSS,
                other => panic!("unexpected asset kind {other}"),
            };
            assert_eq!(asset.content_type, expected, "{name}");
        }
    }

    #[test]
    fn unknown_asset_names_are_refused() {
        for name in [
            "",
            "index.html",
            "openapi.json",
            "mod.rs",
            "../mod.rs",
            "chat.js/",
            "CHAT.JS",
            "style.css%00",
        ] {
            assert!(asset(name).is_none(), "{name:?} was served");
        }
    }

    #[test]
    fn no_asset_refers_to_another_host() {
        for (name, asset) in every_asset() {
            let body = text(asset);
            for scheme in ["http://", "https://", "ws://", "wss://", "=\"//", "url(//", "url(\"//"] {
                assert!(!body.contains(scheme), "{name} contains {scheme}");
            }
        }
    }

    #[test]
    fn pages_have_no_inline_script_style_or_handler() {
        for (name, page) in [("index.html", index()), ("docs.html", docs())] {
            let html = text(page);
            for script in html.split("<script").skip(1) {
                let tag = &script[..script.find('>').unwrap()];
                assert!(tag.contains("src=\"/assets/"), "{name} has an inline script");
                assert!(script[script.find('>').unwrap() + 1..].starts_with("</script>"));
            }
            assert!(!html.contains("<style"), "{name} has a <style> element");
            assert!(!html.contains(" style="), "{name} has a style attribute");
            assert!(!html.contains("javascript:"), "{name} has a javascript: URL");
            let lower = html.to_ascii_lowercase();
            for (at, _) in lower.match_indices(" on") {
                let attribute: String = lower[at + 1..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphabetic())
                    .collect();
                let is_handler = lower[at + 1 + attribute.len()..].starts_with('=');
                assert!(!is_handler, "{name} has an inline {attribute} handler");
            }
        }
    }

    #[test]
    fn pages_link_only_to_assets_that_exist() {
        for (name, page) in [("index.html", index()), ("docs.html", docs())] {
            let html = text(page);
            let mut linked = 0;
            for rest in html.split("\"/assets/").skip(1) {
                let asset_name = &rest[..rest.find('"').unwrap()];
                assert!(
                    asset(asset_name).is_some(),
                    "{name} links to missing /assets/{asset_name}"
                );
                linked += 1;
            }
            assert_eq!(linked, 2, "{name} should load its script and the style sheet");
        }
    }

    #[test]
    fn scripts_never_write_html() {
        for name in ["chat.js", "docs.js"] {
            let script = text(asset(name).unwrap());
            for sink in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
            ] {
                assert!(!script.contains(sink), "{name} uses {sink}");
            }
        }
    }
}
