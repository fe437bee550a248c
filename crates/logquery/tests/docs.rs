//! Every query example in docs/log-queries.md parses, so the reference cannot drift from the
//! parser.

const DOC: &str = include_str!("../../../docs/log-queries.md");
const COMMANDS: &[&str] = &[
    "fields", "display", "filter", "stats", "sort", "limit", "parse", "dedup",
];

/// The code blocks of the page whose first word is a command. A block whose continuation lines
/// start with `|` is one query; otherwise each line is a query of its own.
fn queries() -> Vec<String> {
    let mut out = Vec::new();
    for (i, block) in DOC.split("```").enumerate() {
        if i % 2 == 0 {
            continue;
        }
        let body = block.split_once('\n').map_or("", |(_, b)| b).trim();
        let first = body.split_whitespace().next().unwrap_or("");
        if !COMMANDS.contains(&first) {
            continue;
        }
        if body.lines().any(|l| l.trim_start().starts_with('|')) {
            out.push(body.to_owned());
        } else {
            out.extend(body.lines().map(str::to_owned));
        }
    }
    out
}

#[test]
fn every_example_in_the_reference_parses() {
    let queries = queries();
    assert!(queries.len() >= 20, "found only {} examples", queries.len());
    for q in &queries {
        if let Err(e) = gatehouse_logquery::parse(q) {
            panic!("docs/log-queries.md example does not parse:\n{q}\n{e}");
        }
    }
}
