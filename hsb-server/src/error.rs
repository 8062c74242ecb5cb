//! Errors as the API answers them: `{"error": {"kind", "message"}}` with the status
//! code the kind calls for. One table ([`status_for`]) maps every kind.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hsb_client::api::{ErrorBody, ErrorDetail};
use hybrid_sandbox::{Error, LiveError};

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) exit_status: Option<i32>,
    /// The kind and message, and details of some kinds (a limit's name and value, the
    /// sandbox's state).
    pub(crate) detail: Box<ErrorDetail>,
}

/// The status code of an error kind. `limit` is refined by [`limit_status`].
pub(crate) fn status_for(kind: &str) -> StatusCode {
    match kind {
        "bad_request" | "invalid" | "invalid_path" | "policy" | "image" | "mount"
        | "program_not_found" | "not_executable" | "exec" => StatusCode::BAD_REQUEST,
        "unauthorized" => StatusCode::UNAUTHORIZED,
        "permission_denied" => StatusCode::FORBIDDEN,
        "not_found" | "no_such_sandbox" | "no_such_snapshot" | "no_such_route" | "no_such_exec" => {
            StatusCode::NOT_FOUND
        }
        "method_not_allowed" => StatusCode::METHOD_NOT_ALLOWED,
        "wrong_state" | "exists" | "not_empty" | "not_a_directory" | "is_a_directory" | "busy" => {
            StatusCode::CONFLICT
        }
        "too_large" => StatusCode::PAYLOAD_TOO_LARGE,
        "unavailable" | "unsupported" | "template" => StatusCode::UNPROCESSABLE_ENTITY,
        "quota" => StatusCode::TOO_MANY_REQUESTS,
        "limit" => StatusCode::INSUFFICIENT_STORAGE,
        "timeout" => StatusCode::REQUEST_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A limit hit: 413 for the size of one file (the request is too large for the
/// sandbox), 507 when the sandbox's storage is full.
fn limit_status(e: &LiveError) -> StatusCode {
    match e {
        LiveError::Limit { limit, .. } if *limit == "file_size" => StatusCode::PAYLOAD_TOO_LARGE,
        LiveError::File { errno, .. } if *errno == libc::EFBIG => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::INSUFFICIENT_STORAGE,
    }
}

impl ApiError {
    pub(crate) fn new(kind: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: status_for(kind),
            exit_status: None,
            detail: Box::new(ErrorDetail {
                kind: kind.to_string(),
                message: message.into(),
                ..ErrorDetail::default()
            }),
        }
    }

    #[cfg(test)]
    pub(crate) fn kind(&self) -> &str {
        &self.detail.kind
    }

    #[cfg(test)]
    pub(crate) fn message(&self) -> &str {
        &self.detail.message
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new("bad_request", message)
    }

    pub(crate) fn no_such_sandbox(id: &str) -> ApiError {
        ApiError::new(
            "no_such_sandbox",
            format!(
                "no sandbox {id:?} of yours on this server (list yours with GET /v1/sandboxes)"
            ),
        )
    }

    /// An error of the library, with the status its kind calls for.
    pub(crate) fn library(e: &Error) -> ApiError {
        let kind = e.kind();
        let status = match e {
            Error::Live(l) if kind == "limit" => limit_status(l),
            _ => status_for(kind),
        };
        let mut detail = ErrorDetail {
            kind: kind.to_string(),
            message: e.chain(),
            ..ErrorDetail::default()
        };
        match e {
            Error::Live(LiveError::Limit { limit, value, .. }) => {
                detail.limit = Some(limit.to_string());
                detail.value = Some(value.clone());
            }
            Error::Live(LiveError::WrongState { state, .. }) => detail.state = Some(*state),
            _ => {}
        }
        ApiError {
            status,
            exit_status: None,
            detail: Box::new(detail),
        }
    }

    /// An exec that could not start: the exit status `hsb run` would give rides along.
    pub(crate) fn exec(e: &Error) -> ApiError {
        ApiError {
            exit_status: Some(e.exit_status()),
            ..ApiError::library(e)
        }
    }

    #[cfg(test)]
    pub(crate) fn live(e: LiveError) -> ApiError {
        ApiError::library(&Error::Live(e))
    }

    pub(crate) fn body(&self) -> ErrorBody {
        ErrorBody {
            error: (*self.detail).clone(),
            exit_status: self.exit_status,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        (
            self.status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_the_library_has_a_client_or_state_status() {
        // The kinds LiveError::kind() and Error::kind() name; none of them is a bug of
        // the server, except those that say the sandbox or host failed.
        for k in [
            "wrong_state",
            "not_found",
            "exists",
            "not_a_directory",
            "is_a_directory",
            "not_empty",
            "permission_denied",
            "busy",
            "invalid_path",
            "invalid",
            "program_not_found",
            "not_executable",
            "exec",
            "unsupported",
            "policy",
            "unavailable",
            "image",
            "mount",
        ] {
            let s = status_for(k);
            assert!(s.is_client_error(), "{k}: {s}");
        }
        for k in ["failed", "io", "setup", "run", "runtime"] {
            assert!(status_for(k).is_server_error(), "{k}");
        }
    }

    #[test]
    fn limits_name_the_status_of_their_kind() {
        let file = LiveError::Limit {
            limit: "file_size",
            value: "1MiB".into(),
            message: "x".into(),
        };
        let tmp = LiveError::Limit {
            limit: "tmp_size",
            value: "1MiB".into(),
            message: "x".into(),
        };
        assert_eq!(ApiError::live(file).status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(ApiError::live(tmp).status, StatusCode::INSUFFICIENT_STORAGE);
    }
}
