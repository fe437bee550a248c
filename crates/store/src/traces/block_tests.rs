use std::net::SocketAddr;
use std::sync::Arc;

use gatehouse_telemetry::new_request_id;
use gatehouse_telemetry::spans::{
    AttrValue, HttpVersion, IntegrationKind, SpanStatus, TracedDecisions, TracedIntegration,
    TracedRoute, TracedTiming,
};

use super::*;

const MS: u64 = 1_000_000;

fn traced(trace: u8, start: u64, status: u16) -> TracedExchange {
    TracedExchange {
        trace_id: [trace; 16],
        span_id: [trace; 8],
        parent_id: None,
        start_unix_nanos: start,
        request_id: new_request_id(),
        method: Some("GET".parse().unwrap()),
        route: Some(TracedRoute {
            api: Arc::from("pets"),
            api_version: Arc::from("v1"),
            stage: Arc::from("prod"),
            resource_path: Arc::from("/pets/{id}"),
        }),
        canary: false,
        path: "/pets/7".into(),
        tls: false,
        host: None,
        client: SocketAddr::from(([127, 0, 0, 1], 4000)),
        protocol: HttpVersion::Http11,
        user_agent: None,
        status,
        error: None,
        bytes_in: 0,
        bytes_out: 10,
        timing: TracedTiming {
            routed: Some(MS / 10),
            integration_start: Some(MS),
            integration_response: Some(4 * MS),
            integration_end: Some(5 * MS),
            done: 6 * MS,
        },
        decisions: TracedDecisions::default(),
        phases: None,
        integration: TracedIntegration {
            kind: Some(IntegrationKind::Mock),
            status: Some(status),
            ..TracedIntegration::default()
        },
        websocket: None,
    }
}

fn span(trace: u8, start: u64, service: Option<&str>) -> Span {
    Span {
        trace_id: [trace; 16],
        span_id: [trace, 9, 9, 9, 9, 9, 9, 9],
        parent_span_id: None,
        name: "GET /x".into(),
        kind: SpanKind::Server,
        start_unix_nanos: start,
        end_unix_nanos: start + 2 * MS,
        attributes: service
            .map(|name| (attr::SERVICE_NAME.to_owned(), AttrValue::Str(name.into())))
            .into_iter()
            .collect(),
        events: Vec::new(),
        status: SpanStatus::Unset,
        classification: Classification::Error,
    }
}

#[test]
fn blocks_round_trip_entries_with_their_headers_and_summary() {
    let first = traced(1, 1_000 * MS, 200);
    let service = span(1, 1_001 * MS, Some("orders"));
    let second = traced(2, 1_002 * MS, 503);
    let root_span = span(3, 1_002 * MS, None);
    let mut builder = BlockBuilder::default();
    for entry in [
        Entry::Exchange(&first),
        Entry::Span(&service),
        Entry::Exchange(&second),
        Entry::Span(&root_span),
    ] {
        builder.push(entry).unwrap();
    }
    let block = builder.finish();
    let (summary, keys, data) = (block.summary, block.keys, block.data.to_vec());
    assert!(builder.is_empty(), "finish starts a new block");
    assert_eq!(
        summary,
        BlockSummary {
            start_min: 1_000 * MS,
            // The second exchange's client span starts 1 ms after it.
            start_max: 1_003 * MS,
            entries: 4,
            spans: 6,
            roots: 3,
            root_duration_max: 6 * MS,
            root_classes: 0b1011,
        }
    );
    let mut expected_keys = vec![
        trace_key(&[1; 16]),
        trace_key(&[2; 16]),
        trace_key(&[3; 16]),
    ];
    expected_keys.sort_unstable();
    assert_eq!(keys, expected_keys, "one key per trace");

    let mut decoded = DecodedBlock::default();
    decoded.decode_from(&data).unwrap();
    let headers: Vec<(u8, u64, EntryKind, u64)> = decoded
        .entries()
        .iter()
        .map(|e| (e.trace_id[0], e.start / MS, e.kind, e.spans))
        .collect();
    assert_eq!(
        headers,
        [
            (1, 1_000, EntryKind::Exchange, 2),
            (1, 1_001, EntryKind::Span, 1),
            (2, 1_002, EntryKind::Exchange, 2),
            (3, 1_002, EntryKind::RootSpan, 1),
        ]
    );
    let back: Vec<Vec<Span>> = (0..4)
        .map(|i| {
            decode_entry(decoded.entries()[i].kind, decoded.payload(i))
                .unwrap()
                .spans()
        })
        .collect();
    assert_eq!(back[0], first.spans());
    assert_eq!(back[1], [service]);
    assert_eq!(back[2], second.spans());
    assert_eq!(back[3], [root_span]);
}

#[test]
fn repetitive_entries_compress() {
    let entries: Vec<TracedExchange> = (0..500).map(|i| traced(7, i * MS, 200)).collect();
    let mut builder = BlockBuilder::default();
    for traced in &entries {
        builder.push(Entry::Exchange(traced)).unwrap();
    }
    let block = builder.finish();
    assert!(
        block.data.len() * 3 < block.bytes_raw,
        "{} of {}",
        block.data.len(),
        block.bytes_raw
    );
}

#[test]
fn a_block_closes_at_its_entry_limit() {
    let entry = traced(1, 0, 200);
    let mut builder = BlockBuilder::default();
    let mut pushed = 0;
    while !builder.is_full() {
        builder.push(Entry::Exchange(&entry)).unwrap();
        pushed += 1;
    }
    assert_eq!(pushed, MAX_BLOCK_ENTRIES);
}

#[test]
fn damaged_blobs_are_errors_not_panics() {
    let first = traced(1, 5 * MS, 200);
    let second = span(2, 6 * MS, Some("orders"));
    let mut builder = BlockBuilder::default();
    builder.push(Entry::Exchange(&first)).unwrap();
    builder.push(Entry::Span(&second)).unwrap();
    let good = builder.finish().data.to_vec();
    let mut decoded = DecodedBlock::default();
    assert!(matches!(decoded.decode_from(&[]), Err(BlockError::Header)));
    assert!(matches!(
        decoded.decode_from(&[9]),
        Err(BlockError::Format(9))
    ));
    let mut huge = vec![FORMAT_V1];
    put_varint(&mut huge, 1 << 40);
    assert!(matches!(
        decoded.decode_from(&huge),
        Err(BlockError::TooLarge(_))
    ));
    for cut in 1..good.len() {
        assert!(decoded.decode_from(&good[..cut]).is_err(), "cut at {cut}");
    }
    // Flipping any single byte is an error or a different but well-formed block.
    for at in 0..good.len() {
        let mut bad = good.clone();
        bad[at] ^= 0x55;
        if decoded.decode_from(&bad).is_ok() {
            for i in 0..decoded.entries().len() {
                if let Some(entry) = decode_entry(decoded.entries()[i].kind, decoded.payload(i)) {
                    let _ = entry.spans();
                }
            }
        }
    }
    decoded.decode_from(&good).unwrap();
    assert_eq!(decoded.entries().len(), 2);
}

#[test]
fn both_payloads_begin_with_the_trace_id_where_the_header_says() {
    let traced = traced(7, MS, 200);
    let mut payload = Vec::new();
    traced.encode_into(&mut payload).unwrap();
    assert_eq!(
        payload[EntryKind::Exchange.trace_id_at()..][..16],
        traced.trace_id
    );
    let span = span(8, MS, None);
    let payload = postcard::to_allocvec(&span).unwrap();
    assert_eq!(
        payload[EntryKind::Span.trace_id_at()..][..16],
        span.trace_id
    );
    assert_eq!(
        EntryKind::RootSpan.trace_id_at(),
        EntryKind::Span.trace_id_at()
    );
}
