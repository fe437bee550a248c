//! The named formats: `clf`, `json`, `csv`, `xml` (the four API Gateway's console offers, with our
//! own choice of variables) and `gatehouse`, the default, which keeps the fields of the JSON line
//! Gatehouse wrote before templates existed.
//!
//! The JSON presets leave every variable outside quotes, so numbers stay numbers and an absent
//! value is `null`, which a query language reads as a missing field rather than the text `-`.

/// A named format and its template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Clf,
    Json,
    Csv,
    Xml,
    Gatehouse,
}

impl Preset {
    /// Every preset, in the order error messages list them.
    pub const ALL: [Preset; 5] = [
        Preset::Clf,
        Preset::Json,
        Preset::Csv,
        Preset::Xml,
        Preset::Gatehouse,
    ];

    /// The name used in the config.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Clf => "clf",
            Preset::Json => "json",
            Preset::Csv => "csv",
            Preset::Xml => "xml",
            Preset::Gatehouse => "gatehouse",
        }
    }

    /// The preset with this name.
    pub fn from_name(name: &str) -> Option<Preset> {
        Preset::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The template the preset stands for.
    pub fn template(self) -> &'static str {
        match self {
            Preset::Clf => CLF,
            Preset::Json => JSON,
            Preset::Csv => CSV,
            Preset::Xml => XML,
            Preset::Gatehouse => GATEHOUSE,
        }
    }
}

const CLF: &str = concat!(
    "$context.identity.sourceIp - $context.identity.apiKeyId [$context.requestTime] ",
    "\"$context.httpMethod $context.path $context.protocol\" ",
    "$context.status $context.responseLength $context.requestId",
);

const JSON: &str = concat!(
    "{\"requestId\":$context.requestId",
    ",\"ip\":$context.identity.sourceIp",
    ",\"requestTime\":$context.requestTime",
    ",\"requestTimeEpoch\":$context.requestTimeEpoch",
    ",\"httpMethod\":$context.httpMethod",
    ",\"resourcePath\":$context.resourcePath",
    ",\"path\":$context.path",
    ",\"status\":$context.status",
    ",\"protocol\":$context.protocol",
    ",\"responseLength\":$context.responseLength",
    ",\"responseLatency\":$context.responseLatency",
    ",\"integrationLatency\":$context.integrationLatency",
    ",\"integration\":{\"status\":$context.integration.status,\"error\":$context.integration.error}",
    ",\"error\":{\"message\":$context.error.message,\"responseType\":$context.error.responseType}",
    ",\"apiId\":$context.apiId",
    ",\"stage\":$context.stage",
    ",\"domainName\":$context.domainName",
    ",\"userAgent\":$context.identity.userAgent",
    ",\"traceId\":$context.traceId}",
);

const CSV: &str = concat!(
    "$context.requestId,$context.requestTime,$context.identity.sourceIp,",
    "$context.httpMethod,$context.resourcePath,$context.path,$context.protocol,",
    "$context.status,$context.responseLength,$context.responseLatency,",
    "$context.integrationLatency,$context.integration.status,$context.error.responseType,",
    "$context.apiId,$context.stage",
);

const XML: &str = concat!(
    "<request id=\"$context.requestId\">",
    "<requestTime>$context.requestTime</requestTime>",
    "<ip>$context.identity.sourceIp</ip>",
    "<httpMethod>$context.httpMethod</httpMethod>",
    "<resourcePath>$context.resourcePath</resourcePath>",
    "<path>$context.path</path>",
    "<protocol>$context.protocol</protocol>",
    "<status>$context.status</status>",
    "<responseLength>$context.responseLength</responseLength>",
    "<responseLatency>$context.responseLatency</responseLatency>",
    "<integrationLatency>$context.integrationLatency</integrationLatency>",
    "<integrationStatus>$context.integration.status</integrationStatus>",
    "<errorResponseType>$context.error.responseType</errorResponseType>",
    "<apiId>$context.apiId</apiId>",
    "<stage>$context.stage</stage>",
    "</request>",
);

const GATEHOUSE: &str = concat!(
    "{\"requestId\":$context.requestId",
    ",\"time\":$context.gatehouse.time",
    ",\"requestTimeEpoch\":$context.requestTimeEpoch",
    ",\"kind\":$context.gatehouse.kind",
    ",\"ip\":$context.identity.sourceIp",
    ",\"method\":$context.httpMethod",
    ",\"host\":$context.gatehouse.host",
    ",\"path\":$context.path",
    ",\"protocol\":$context.protocol",
    ",\"route\":$context.resourcePath",
    ",\"api\":$context.apiId",
    ",\"apiVersion\":$context.gatehouse.apiVersion",
    ",\"stage\":$context.stage",
    ",\"status\":$context.status",
    ",\"bytesIn\":$context.gatehouse.bytesIn",
    ",\"bytesOut\":$context.responseLength",
    ",\"latencyMs\":$context.gatehouse.latencyMs",
    ",\"integrationLatencyMs\":$context.gatehouse.integrationLatencyMs",
    ",\"integrationStatus\":$context.integration.status",
    ",\"error\":$context.gatehouse.errorClass",
    ",\"errorMessage\":$context.error.message",
    ",\"integrationError\":$context.integration.error",
    ",\"userAgent\":$context.identity.userAgent",
    ",\"websocket\":$context.gatehouse.websocket}",
);
