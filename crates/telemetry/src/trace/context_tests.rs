use super::*;
use crate::trace::push_hex;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

fn ids() -> ([u8; 16], [u8; 8]) {
    (
        parse_hex::<16>(TRACE.as_bytes(), true).unwrap(),
        parse_hex::<8>(PARENT.as_bytes(), true).unwrap(),
    )
}

/// Each case: the header, and the flags it parses to (`None`: invalid).
#[test]
fn traceparent_table() {
    let cases: Vec<(String, Option<u8>)> = vec![
        (format!("00-{TRACE}-{PARENT}-01"), Some(FLAG_SAMPLED)),
        (format!("00-{TRACE}-{PARENT}-00"), Some(0)),
        (
            format!("00-{TRACE}-{PARENT}-03"),
            Some(FLAG_SAMPLED | FLAG_RANDOM),
        ),
        // Unknown flag bits are dropped, not refused.
        (
            format!("00-{TRACE}-{PARENT}-ff"),
            Some(FLAG_SAMPLED | FLAG_RANDOM),
        ),
        (format!("00-{TRACE}-{PARENT}-09"), Some(FLAG_SAMPLED)),
        // Version 00 must be exactly 55 characters.
        (format!("00-{TRACE}-{PARENT}-01-extra"), None),
        (format!("00-{TRACE}-{PARENT}-1"), None),
        // A future version is read by its version-00 prefix.
        (format!("cc-{TRACE}-{PARENT}-01"), Some(FLAG_SAMPLED)),
        (
            format!("cc-{TRACE}-{PARENT}-01-what-the-future-holds"),
            Some(FLAG_SAMPLED),
        ),
        (format!("cc-{TRACE}-{PARENT}-01.what"), None),
        (format!("ff-{TRACE}-{PARENT}-01"), None),
        // Uppercase hex, wrong lengths, zero ids, wrong separators.
        (format!("00-{}-{PARENT}-01", TRACE.to_uppercase()), None),
        (format!("00-{TRACE}-{}-01", PARENT.to_uppercase()), None),
        (format!("0A-{TRACE}-{PARENT}-01"), None),
        (format!("00-{TRACE}-{PARENT}-0A"), None),
        (format!("00-{TRACE}0-{}-01", &PARENT[1..]), None),
        (
            format!("00-00000000000000000000000000000000-{PARENT}-01"),
            None,
        ),
        (format!("00-{TRACE}-0000000000000000-01"), None),
        (format!("00_{TRACE}-{PARENT}-01"), None),
        (format!("00-{TRACE}_{PARENT}-01"), None),
        (format!("00-{}g-{PARENT}-01", &TRACE[1..]), None),
        (String::new(), None),
        ("00".to_owned(), None),
    ];
    let (trace_id, parent_id) = ids();
    for (header, flags) in cases {
        let parsed = parse_traceparent(header.as_bytes());
        let expected = flags.map(|flags| TraceParent {
            trace_id,
            parent_id,
            flags,
        });
        assert_eq!(parsed, expected, "{header}");
    }
}

#[test]
fn traceparent_formats_as_version_00() {
    let (trace_id, parent_id) = ids();
    let value = format_traceparent(&trace_id, &parent_id, FLAG_SAMPLED);
    assert_eq!(value, format!("00-{TRACE}-{PARENT}-01").as_str());
    let parsed = parse_traceparent(value.as_bytes()).unwrap();
    assert_eq!((parsed.trace_id, parsed.parent_id), (trace_id, parent_id));
}

/// Each case: the header, and (root, parent, sampled) as it parses (`None`: invalid).
#[test]
fn xray_table() {
    let root = "1-5759e988-bd862e3fe1be46a994272793";
    let parent = "53995c3f42cd8ad8";
    type Parsed = Option<(bool, Option<bool>)>;
    let cases: Vec<(String, Parsed)> = vec![
        (
            format!("Root={root};Parent={parent};Sampled=1"),
            Some((true, Some(true))),
        ),
        (
            format!("Root={root};Parent={parent};Sampled=0"),
            Some((true, Some(false))),
        ),
        (
            format!("Root={root};Parent={parent};Sampled=?"),
            Some((true, None)),
        ),
        (format!("Root={root}"), Some((false, None))),
        (format!("Root={root};Sampled=1"), Some((false, Some(true)))),
        (
            format!("Sampled=1; Parent={parent} ;Root={root};"),
            Some((true, Some(true))),
        ),
        (
            format!("Self=1-67891233-12456789abcdef012345678;Root={root};Lineage=a87bd80c:0"),
            Some((false, None)),
        ),
        (
            format!(
                "Root={};Parent={}",
                root.to_uppercase(),
                parent.to_uppercase()
            ),
            Some((true, None)),
        ),
        (format!("Parent={parent};Sampled=1"), None),
        (
            format!("Root=2-5759e988-bd862e3fe1be46a994272793;Parent={parent}"),
            None,
        ),
        (
            format!("Root=1-5759e98-bd862e3fe1be46a9942727930;Parent={parent}"),
            None,
        ),
        ("Root=1-00000000-000000000000000000000000".to_owned(), None),
        (format!("Root={root};Parent=0000000000000000"), None),
        (format!("Root={root};Parent=53995c3f42cd8ad"), None),
        (format!("Root={root};Sampled=yes"), None),
        (format!("Root={root};garbage"), None),
        (String::new(), None),
    ];
    let expected_trace = parse_hex::<16>(b"5759e988bd862e3fe1be46a994272793", true).unwrap();
    let expected_parent = parse_hex::<8>(parent.as_bytes(), true).unwrap();
    for (header, expected) in cases {
        let parsed = parse_xray(header.as_bytes());
        let expected = expected.map(|(has_parent, sampled)| XrayHeader {
            trace_id: expected_trace,
            parent_id: has_parent.then_some(expected_parent),
            sampled,
        });
        assert_eq!(parsed, expected, "{header}");
    }
}

#[test]
fn xray_root_and_w3c_trace_id_are_the_same_128_bits() {
    let root = "1-5759e988-bd862e3fe1be46a994272793";
    let trace_id = parse_xray_root(root.as_bytes()).unwrap();
    let mut hex = Vec::new();
    push_hex(&mut hex, &trace_id);
    assert_eq!(hex, b"5759e988bd862e3fe1be46a994272793");
    let mut back = Vec::new();
    push_xray_root(&mut back, &trace_id);
    assert_eq!(back, root.as_bytes());
    let parent = [0x53, 0x99, 0x5c, 0x3f, 0x42, 0xcd, 0x8a, 0xd8];
    assert_eq!(
        format_xray(&trace_id, Some(&parent), Some(true)),
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    );
    assert_eq!(
        format_xray(&trace_id, None, None),
        "Root=1-5759e988-bd862e3fe1be46a994272793"
    );
}

#[test]
fn upstream_headers_match_the_single_formatters() {
    let (trace_id, span_id) = ids();
    for flags in [0, FLAG_SAMPLED, FLAG_RANDOM, FLAG_SAMPLED | FLAG_RANDOM] {
        let (traceparent, xray) = format_upstream(&trace_id, &span_id, flags);
        assert_eq!(traceparent, format_traceparent(&trace_id, &span_id, flags));
        let sampled = flags & FLAG_SAMPLED != 0;
        assert_eq!(xray, format_xray(&trace_id, Some(&span_id), Some(sampled)));
        assert_eq!(
            parse_traceparent(traceparent.as_bytes()).map(|p| (p.trace_id, p.parent_id, p.flags)),
            Some((trace_id, span_id, flags))
        );
    }
}
