//! Assertions every data-plane test makes about the gateway's own answers and their records.

use gatehouse_telemetry::{ErrorClass, Exchange};

use crate::raw::RawResponse;

/// Checks an answer the gateway made itself: the status, a JSON body of exactly
/// `{"message", "requestId"}`, and an `x-request-id` header equal to `requestId`.
/// Returns the request id.
pub async fn gateway_error(response: reqwest::Response, status: u16, message: &str) -> String {
    assert_eq!(
        response.status().as_u16(),
        status,
        "status of {}",
        response.url()
    );
    let header = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("the answer carries x-request-id");
    let content_type = response.headers().get("content-type").cloned();
    assert_eq!(
        content_type.as_ref().and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let body = response.bytes().await.expect("read the error body");
    check_error_body(&body, &header, message)
}

/// [`gateway_error`] for a response read by the raw client.
pub fn raw_gateway_error(response: &RawResponse, status: u16, message: &str) -> String {
    assert_eq!(
        response.status,
        status,
        "status; body: {}",
        String::from_utf8_lossy(&response.body)
    );
    let header = response
        .header("x-request-id")
        .expect("the answer carries x-request-id")
        .to_owned();
    assert_eq!(response.header("content-type"), Some("application/json"));
    check_error_body(&response.body, &header, message)
}

fn check_error_body(body: &[u8], header: &str, message: &str) -> String {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_else(|error| {
        panic!(
            "error body is not JSON ({error}): {}",
            String::from_utf8_lossy(body)
        )
    });
    let object = value.as_object().expect("the error body is a JSON object");
    assert_eq!(object.len(), 2, "exactly message and requestId: {value}");
    assert_eq!(object["message"], message, "message in {value}");
    assert_eq!(
        object["requestId"], header,
        "requestId equals the x-request-id header"
    );
    header.to_owned()
}

/// Checks that `record` describes a gateway error answered with `status`.
pub fn error_record(record: &Exchange, status: u16, class: ErrorClass, request_id: &str) {
    assert_eq!(record.status, status, "record status: {record:#?}");
    assert_eq!(record.error, Some(class), "record error class: {record:#?}");
    assert_eq!(record.request_id.as_str(), request_id, "record request id");
    assert!(
        record.error_message.is_some(),
        "an error record says what happened: {record:#?}"
    );
}
