//! Reading requests: JSON bodies (bounded in size and time, errors naming the field),
//! the sandbox id of the path, and query strings (only the parameters a route takes).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// How long a request body may take to arrive.
pub(crate) const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads a JSON body of at most `limit` bytes; an empty body reads as `{}`.
pub(crate) async fn read_json<T: DeserializeOwned>(
    body: Body,
    limit: usize,
) -> Result<T, ApiError> {
    let bytes = match tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, limit).collect()).await
    {
        Err(_) => {
            return Err(ApiError::new(
                "timeout",
                format!(
                    "the request body did not arrive within {}s",
                    BODY_TIMEOUT.as_secs()
                ),
            ))
        }
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(ApiError::new(
                "too_large",
                format!("the request body is over {limit} bytes (send files with PUT .../files)"),
            ))
        }
        Ok(Err(e)) => return Err(ApiError::bad_request(format!("reading the body: {e}"))),
        Ok(Ok(c)) => c.to_bytes(),
    };
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &bytes
    };
    // Objects only (serde would also read a struct from an array).
    if text.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(text);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let at = e.path().to_string();
        let inner = e.into_inner();
        if at == "." || at.is_empty() {
            ApiError::bad_request(format!("the request body: {inner}"))
        } else {
            ApiError::bad_request(format!("the request body's `{at}`: {inner}"))
        }
    })?;
    // One object, nothing after it but white space (`{..}{..}` is no request).
    de.end().map_err(|e| {
        ApiError::bad_request(format!(
            "the request body holds more than one JSON object: {e}"
        ))
    })?;
    Ok(value)
}

/// The `{id}` of a sandbox path.
#[derive(Debug)]
pub(crate) struct SandboxId(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for SandboxId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(id)) => Ok(SandboxId(id)),
            Err(e) => Err(ApiError::bad_request(format!("the sandbox id: {e}"))),
        }
    }
}

/// A query string's parameters, each at most once, only those in `allowed`.
pub(crate) fn query(
    raw: Option<&str>,
    allowed: &[&str],
) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    let raw = raw.unwrap_or_default();
    // form_urlencoded decodes bytes that are not UTF-8 to U+FFFD: distinct paths would
    // name one file. Such a query is refused instead.
    if let Some(bad) = raw.split('&').find(|p| !strictly_utf8(p)) {
        return Err(ApiError::bad_request(format!(
            "query `{bad}`: percent-encoded bytes that are not UTF-8 (paths and values are UTF-8 here)"
        )));
    }
    for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
        if !allowed.contains(&k.as_ref()) {
            return Err(ApiError::bad_request(format!(
                "unknown query parameter `{k}` (this path takes: {})",
                allowed.join(", ")
            )));
        }
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(ApiError::bad_request(format!(
                "query parameter `{k}` given twice"
            )));
        }
    }
    Ok(out)
}

/// Whether a query's `name=value` part decodes to UTF-8 (percent escapes included).
fn strictly_utf8(part: &str) -> bool {
    let b = part.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    std::str::from_utf8(&out).is_ok()
}

/// A boolean query parameter: `true` or `false`, absent is false.
pub(crate) fn flag(q: &BTreeMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match q.get(name).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(v) => Err(ApiError::bad_request(format!(
            "query parameter `{name}`: `{v}` is not true or false"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        let q = query(
            Some("path=%2Ftmp%2Fa%20b&recursive=true"),
            &["path", "recursive"],
        )
        .unwrap();
        assert_eq!(q["path"], "/tmp/a b");
        assert!(flag(&q, "recursive").unwrap());
        assert!(!flag(&q, "stat").unwrap());
        assert!(query(Some("path=a&path=b"), &["path"]).is_err());
        // Bytes that are not UTF-8 are refused, not replaced; UTF-8 ones are fine.
        let e = query(Some("path=%2Ftmp%2F%ff%fe"), &["path"]).unwrap_err();
        assert!(e.message().contains("not UTF-8"), "{}", e.message());
        assert_eq!(
            query(Some("path=%2Ftmp%2F%C3%A9"), &["path"]).unwrap()["path"],
            "/tmp/é"
        );
        let e = query(Some("paht=a"), &["path"]).unwrap_err();
        assert!(e.message().contains("paht"), "{}", e.message());
        let q = query(Some("recursive=maybe"), &["recursive"]).unwrap();
        assert!(flag(&q, "recursive").is_err());
    }

    #[tokio::test]
    async fn json_bodies() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        struct T {
            #[serde(default)]
            a: Vec<u32>,
        }
        let t: T = read_json(Body::from(""), 10).await.unwrap();
        assert!(t.a.is_empty());
        let e = read_json::<T>(Body::from(r#"{"a":[1,"x"]}"#), 100)
            .await
            .unwrap_err();
        assert!(e.message().contains("`a[1]`"), "{}", e.message());
        let e = read_json::<T>(Body::from(r#"{"a":[1,2,3,4,5,6]}"#), 10)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), "too_large");
        let deep = "[".repeat(10_000);
        let e = read_json::<T>(Body::from(deep), 1 << 20).await.unwrap_err();
        assert_eq!(e.kind(), "bad_request");
    }
}
