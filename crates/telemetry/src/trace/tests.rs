use super::*;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";
const XRAY_ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_str(value).unwrap());
    }
    map
}

fn hex(bytes: &[u8]) -> String {
    let mut out = Vec::new();
    push_hex(&mut out, bytes);
    String::from_utf8(out).unwrap()
}

fn any_request() -> SampleRequest<'static> {
    SampleRequest {
        api: "shop",
        stage: "prod",
        host: "gw.test",
        method: "GET",
        path: "/",
    }
}

/// Each case: request headers, and the trace id, parent and sampled flag read from them.
#[test]
fn incoming_precedence_table() {
    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let xray = format!("Root={XRAY_ROOT};Parent=53995c3f42cd8ad8;Sampled=0");
    let xray_trace = "5759e988bd862e3fe1be46a994272793";
    type Expected<'a> = Option<(&'a str, &'a str, Option<bool>)>;
    let cases: Vec<(Vec<(&'static str, &str)>, Expected<'_>)> = vec![
        (
            vec![("traceparent", &traceparent)],
            Some((TRACE, PARENT, Some(true))),
        ),
        (
            vec![("x-amzn-trace-id", &xray)],
            Some((xray_trace, "53995c3f42cd8ad8", Some(false))),
        ),
        // Both: traceparent wins.
        (
            vec![("traceparent", &traceparent), ("x-amzn-trace-id", &xray)],
            Some((TRACE, PARENT, Some(true))),
        ),
        // An invalid traceparent falls back to X-Ray.
        (
            vec![("traceparent", "00-garbage"), ("x-amzn-trace-id", &xray)],
            Some((xray_trace, "53995c3f42cd8ad8", Some(false))),
        ),
        // Two traceparent lines are invalid.
        (
            vec![("traceparent", &traceparent), ("traceparent", &traceparent)],
            None,
        ),
        (vec![("traceparent", "00-garbage")], None),
        (vec![("x-amzn-trace-id", "Root=nonsense")], None),
        (vec![], None),
    ];
    for (pairs, expected) in cases {
        let incoming = read_incoming(&headers(&pairs));
        let got = incoming
            .as_ref()
            .map(|i| (hex(&i.trace_id), i.parent_id.map(|p| hex(&p)), i.sampled));
        let expected = expected.map(|(t, p, s)| (t.to_owned(), Some(p.to_owned()), s));
        assert_eq!(got, expected, "{pairs:?}");
    }
}

#[test]
fn tracestate_is_kept_only_with_a_valid_traceparent() {
    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let incoming = read_incoming(&headers(&[
        ("traceparent", &traceparent),
        ("tracestate", "rojo=1,Bad=2"),
    ]))
    .unwrap();
    assert_eq!(incoming.tracestate.unwrap(), "rojo=1");
    let xray = format!("Root={XRAY_ROOT}");
    let incoming = read_incoming(&headers(&[
        ("x-amzn-trace-id", &xray),
        ("tracestate", "rojo=1"),
    ]))
    .unwrap();
    assert_eq!(incoming.tracestate, None);
}

#[test]
fn continued_trace_gets_the_gateway_span_as_parent_in_both_formats() {
    let tracer = Tracer::with_defaults();
    let traceparent = format!("00-{TRACE}-{PARENT}-03");
    let incoming = read_incoming(&headers(&[
        ("traceparent", &traceparent),
        ("tracestate", "congo=t61rcWkgMzE"),
    ]));
    let context = tracer.start(incoming.as_ref(), &any_request());
    assert_eq!(hex(&context.ids.trace_id), TRACE);
    assert_eq!(
        context.ids.parent_id.map(|p| hex(&p)),
        Some(PARENT.to_owned())
    );
    assert_ne!(hex(&context.ids.span_id), PARENT);
    assert!(context.ids.sampled);
    let span = hex(&context.ids.span_id);
    let mut upstream = headers(&[("traceparent", "stale"), ("x-amzn-trace-id", "stale")]);
    context.propagate(&mut upstream);
    assert_eq!(
        upstream["traceparent"],
        format!("00-{TRACE}-{span}-03").as_str()
    );
    assert_eq!(
        upstream["x-amzn-trace-id"],
        format!(
            "Root=1-{}-{};Parent={span};Sampled=1",
            &TRACE[..8],
            &TRACE[8..]
        )
        .as_str()
    );
    assert_eq!(upstream["tracestate"], "congo=t61rcWkgMzE");
    assert_eq!(
        xray_response(&context.ids),
        format!("Root=1-{}-{}", &TRACE[..8], &TRACE[8..]).as_str()
    );
}

#[test]
fn new_trace_is_random_flagged_and_drops_client_tracestate() {
    let tracer = Tracer::with_defaults();
    let context = tracer.start(None, &any_request());
    assert_eq!(context.ids.parent_id, None);
    assert!(context.random);
    let mut upstream = headers(&[("tracestate", "rojo=1")]);
    context.propagate(&mut upstream);
    assert!(!upstream.contains_key("tracestate"));
    let parent = parse_traceparent(upstream["traceparent"].as_bytes()).unwrap();
    assert_eq!(parent.trace_id, context.ids.trace_id);
    assert_eq!(parent.parent_id, context.ids.span_id);
    assert_eq!(parent.flags & FLAG_RANDOM, FLAG_RANDOM);
}

#[test]
fn incoming_sampled_flag_is_honoured_only_when_configured() {
    let never = || Sampler::new(Vec::new(), Some(SamplingRule::catch_all("d", 1, 0, 0.0)));
    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let incoming = read_incoming(&headers(&[("traceparent", &traceparent)]));
    let honour = Tracer::new(true, true, never());
    assert!(honour.start(incoming.as_ref(), &any_request()).ids.sampled);
    let ignore = Tracer::new(true, false, never());
    assert!(!ignore.start(incoming.as_ref(), &any_request()).ids.sampled);
    // `Sampled=?` asks the gateway to decide: the rules do.
    let xray = format!("Root={XRAY_ROOT};Sampled=?");
    let incoming = read_incoming(&headers(&[("x-amzn-trace-id", &xray)]));
    assert!(!honour.start(incoming.as_ref(), &any_request()).ids.sampled);
}

#[test]
fn the_scan_finds_each_trace_header_and_nothing_else() {
    let seen = TraceHeadersSeen::scan(&headers(&[("host", "a"), ("accept", "*/*")]));
    assert_eq!(seen, TraceHeadersSeen::default());
    let seen = TraceHeadersSeen::scan(&headers(&[("Traceparent", "x"), ("X-Amzn-Trace-Id", "y")]));
    assert_eq!(
        seen,
        TraceHeadersSeen {
            traceparent: true,
            tracestate: false,
            xray: true
        }
    );
    assert!(TraceHeadersSeen::scan(&headers(&[("tracestate", "a=1")])).tracestate);
    // A context started without a scan removes a client's tracestate; one whose scan found none
    // skips the lookup and leaves other headers alone.
    let tracer = Tracer::with_defaults();
    let mut context = tracer.start(None, &any_request());
    let mut upstream = headers(&[("tracestate", "rojo=1")]);
    context.propagate(&mut upstream);
    assert!(!upstream.contains_key("tracestate"));
    context.client_tracestate = false;
    let mut upstream = headers(&[("accept", "*/*")]);
    context.propagate(&mut upstream);
    assert_eq!(upstream.len(), 3);
}
