//! The one table that maps what went wrong to the status and message a client sees.
//!
//! Every error the gateway answers itself goes through [`GatewayError`], so the status, the JSON
//! body and the exchange's error class can never disagree. Messages are fixed strings: nothing
//! from the request or the upstream (which may hold secrets) is echoed to the client.

use bytes::Bytes;
use gatehouse_telemetry::{ErrorClass, RequestId};
use http::{HeaderValue, Response, StatusCode, header};

/// An error the gateway answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayError {
    MalformedRequest,
    HeadersTooLarge,
    PayloadTooLarge,
    RouteNotFound,
    MethodNotAllowed,
    UpgradeRequired,
    UpstreamConnect,
    UpstreamReset,
    UpstreamTimeout,
    UpstreamRejected,
    Internal,
}

impl GatewayError {
    /// Status, message and error class: the single source of truth for gateway-made answers.
    pub fn parts(self) -> (StatusCode, &'static str, ErrorClass) {
        use ErrorClass as C;
        use StatusCode as S;
        match self {
            Self::MalformedRequest => (S::BAD_REQUEST, "Bad request", C::MalformedRequest),
            Self::HeadersTooLarge => (
                S::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "Request header fields too large",
                C::HeadersTooLarge,
            ),
            Self::PayloadTooLarge => (
                S::PAYLOAD_TOO_LARGE,
                "Request payload too large",
                C::PayloadTooLarge,
            ),
            Self::RouteNotFound => (S::NOT_FOUND, "Not found", C::RouteNotFound),
            Self::MethodNotAllowed => (
                S::METHOD_NOT_ALLOWED,
                "Method not allowed",
                C::MethodNotAllowed,
            ),
            Self::UpgradeRequired => (
                S::UPGRADE_REQUIRED,
                "This route expects a WebSocket upgrade",
                C::MalformedRequest,
            ),
            Self::UpstreamConnect => (
                S::BAD_GATEWAY,
                "Could not connect to the upstream",
                C::UpstreamConnect,
            ),
            Self::UpstreamReset => (
                S::BAD_GATEWAY,
                "The upstream closed the connection without a valid response",
                C::UpstreamReset,
            ),
            Self::UpstreamTimeout => (
                S::GATEWAY_TIMEOUT,
                "Endpoint request timed out",
                C::UpstreamTimeout,
            ),
            Self::UpstreamRejected => (
                S::BAD_GATEWAY,
                "The upstream refused the WebSocket handshake",
                C::UpstreamRejected,
            ),
            Self::Internal => (
                S::INTERNAL_SERVER_ERROR,
                "Internal server error",
                C::Internal,
            ),
        }
    }

    pub fn status(self) -> StatusCode {
        self.parts().0
    }

    pub fn message(self) -> &'static str {
        self.parts().1
    }

    pub fn class(self) -> ErrorClass {
        self.parts().2
    }
}

/// The JSON error body `{"message": ..., "requestId": ...}`.
pub fn error_body(message: &str, request_id: &RequestId) -> Bytes {
    let body = serde_json::json!({ "message": message, "requestId": request_id.as_str() });
    Bytes::from(body.to_string())
}

/// A complete error response with the JSON body and content headers.
pub fn error_response(error: GatewayError, request_id: &RequestId) -> Response<Bytes> {
    let body = error_body(error.message(), request_id);
    let mut response = Response::new(body);
    *response.status_mut() = error.status();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_maps_to_the_documented_status() {
        let table = [
            (GatewayError::MalformedRequest, 400),
            (GatewayError::HeadersTooLarge, 431),
            (GatewayError::PayloadTooLarge, 413),
            (GatewayError::RouteNotFound, 404),
            (GatewayError::MethodNotAllowed, 405),
            (GatewayError::UpgradeRequired, 426),
            (GatewayError::UpstreamConnect, 502),
            (GatewayError::UpstreamReset, 502),
            (GatewayError::UpstreamTimeout, 504),
            (GatewayError::UpstreamRejected, 502),
            (GatewayError::Internal, 500),
        ];
        for (error, status) in table {
            assert_eq!(error.status().as_u16(), status, "{error:?}");
        }
    }

    #[test]
    fn body_is_json_with_message_and_request_id() {
        let id = RequestId::from_client(b"abc").unwrap();
        let response = error_response(GatewayError::RouteNotFound, &id);
        let v: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"message": "Not found", "requestId": "abc"})
        );
    }
}
