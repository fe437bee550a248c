//! The mock integration: the API answers from its config, like API Gateway's MOCK integration.

use bytes::Bytes;
use gatehouse_config::{MockIntegration, PathParams};
use gatehouse_telemetry::execution::IntegrationResponse;
use http::header::{self, HeaderValue};
use http::{Response, request::Parts};

use crate::body::ResponseBody;
use crate::record::Recorder;
use crate::service::RequestScope;

pub(crate) fn respond(
    scope: &RequestScope<'_>,
    mock: &MockIntegration,
    parts: &Parts,
    params: &PathParams<'_>,
    mut recorder: Recorder,
) -> Response<ResponseBody> {
    let context = |var| scope.context_value(var, &parts.method, parts.uri.path());
    let now = recorder.elapsed();
    {
        let exchange = recorder.exchange();
        exchange.status = mock.status.as_u16();
        exchange.integration.kind = Some("mock");
        exchange.integration.status = Some(mock.status.as_u16());
        exchange.timing.integration_start = Some(now);
        exchange.timing.integration_response = Some(now);
        exchange.timing.integration_end = Some(now);
    }
    if let Some(detail) = recorder.execution() {
        detail.integration_response = Some(IntegrationResponse {
            status: mock.status.as_u16(),
            headers: None,
        });
    }
    let body = match mock.body.as_static() {
        Some(text) => Bytes::copy_from_slice(text.as_bytes()),
        None => Bytes::from(mock.body.render(params, &context)),
    };
    let mut response = Response::new(ResponseBody::full(body, Some(recorder)));
    *response.status_mut() = mock.status;
    let headers = response.headers_mut();
    for (name, template) in &mock.headers {
        match HeaderValue::from_str(&template.render(params, &context)) {
            Ok(value) => {
                headers.insert(name.clone(), value);
            }
            Err(_) => {
                tracing::debug!(header = %name, "mock header rendered to an invalid value; skipped")
            }
        }
    }
    if !headers.contains_key(header::CONTENT_TYPE) {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    response
}
