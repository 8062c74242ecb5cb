//! The OpenAPI 3 document of the API, served at `GET /openapi.json`. Written by hand
//! (`hsb-server/openapi.json`); tests check that its paths and methods are exactly the
//! router's, and the schemathesis suite checks every answer against it.

/// The document.
pub(crate) const DOCUMENT: &str = include_str!("../openapi.json");

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    #[test]
    fn the_document_lists_exactly_the_routes() {
        let doc: serde_json::Value = serde_json::from_str(super::DOCUMENT).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        let documented: BTreeSet<String> =
            doc["paths"].as_object().unwrap().keys().cloned().collect();
        let routed: BTreeSet<String> = crate::routes::table()
            .into_iter()
            .map(|(p, _)| p.to_string())
            .collect();
        assert_eq!(documented, routed);
        // Every operation documents its errors, and has an id.
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                assert!(op["responses"]["default"].is_object(), "{method} {path}");
                assert!(op["operationId"].is_string(), "{method} {path}");
            }
        }
    }
}
