//! Sampling rules: which requests the gateway records a trace for, as X-Ray decides it.
//!
//! Rules are tried in ascending priority; the first whose api, stage, host, method and path globs
//! all match decides. A rule first takes from its reservoir — a fixed number of traces per
//! wall-clock second — and, once that is spent, samples a fixed fraction of the rest. The built-in
//! default (1 per second plus 5 %) is X-Ray's and always comes last.
//!
//! The decision is cheap and lock-free: one glob walk per rule tried, one compare-and-swap on the
//! rule's reservoir, one random draw. The clock and the random number are arguments of
//! [`Sampler::decide_at`], so the statistics can be tested exactly.

use std::sync::atomic::{AtomicU64, Ordering};

use super::ids::{epoch_seconds, random_u64};

/// One sampling rule as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingRule {
    pub name: String,
    /// Lower comes first; the default rule is 10 000, after every configured rule.
    pub priority: u32,
    /// Globs with `*` (any run of characters) and `?` (one character).
    pub api: String,
    pub stage: String,
    /// Matched case-insensitively against the request's host without its port.
    pub host: String,
    /// Matched case-insensitively.
    pub method: String,
    pub path: String,
    /// Traces per second taken before the fixed rate applies.
    pub reservoir_per_second: u32,
    /// The fraction (0 to 1) of requests sampled once the reservoir is spent.
    pub fixed_rate: f64,
}

impl SamplingRule {
    /// X-Ray's default: every request, 1 per second, then 5 %.
    pub fn default_rule() -> Self {
        Self::catch_all("default", 10_000, 1, 0.05)
    }

    /// A rule that matches every request.
    pub fn catch_all(
        name: &str,
        priority: u32,
        reservoir_per_second: u32,
        fixed_rate: f64,
    ) -> Self {
        Self {
            name: name.to_owned(),
            priority,
            api: "*".to_owned(),
            stage: "*".to_owned(),
            host: "*".to_owned(),
            method: "*".to_owned(),
            path: "*".to_owned(),
            reservoir_per_second,
            fixed_rate,
        }
    }
}

/// What the rules look at. Requests that matched no route have an empty api and stage.
#[derive(Debug, Clone, Copy)]
pub struct SampleRequest<'a> {
    pub api: &'a str,
    pub stage: &'a str,
    pub host: &'a str,
    pub method: &'a str,
    pub path: &'a str,
}

/// How a request was sampled, for tests and (later) per-rule statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampled {
    Reservoir,
    FixedRate,
    No,
}

impl Sampled {
    pub fn is_sampled(self) -> bool {
        self != Self::No
    }
}

/// The compiled rules with their reservoirs. Built once per configuration; a reload builds a new
/// one (reservoirs start afresh).
#[derive(Debug)]
pub struct Sampler {
    rules: Box<[CompiledRule]>,
}

#[derive(Debug)]
struct CompiledRule {
    rule: SamplingRule,
    host: String,
    method: String,
    /// `fixed_rate` as a threshold for a uniform `u64`; `None` means always.
    threshold: Option<u64>,
    /// The current second in the high 32 bits, the traces taken in it in the low 32.
    reservoir: AtomicU64,
    /// Every pattern is `*` (the default rule, typically): matching needs no look at the request.
    matches_everything: bool,
}

impl Sampler {
    /// Orders `rules` by priority (stable, so equal priorities keep their order) and appends the
    /// default rule, or `default` if given.
    pub fn new(mut rules: Vec<SamplingRule>, default: Option<SamplingRule>) -> Self {
        rules.sort_by_key(|rule| rule.priority);
        rules.push(default.unwrap_or_else(SamplingRule::default_rule));
        let rules = rules
            .into_iter()
            .map(|rule| CompiledRule {
                matches_everything: [&rule.host, &rule.method, &rule.path, &rule.api, &rule.stage]
                    .iter()
                    .all(|pattern| pattern.as_str() == "*"),
                host: rule.host.to_ascii_lowercase(),
                method: rule.method.to_ascii_uppercase(),
                threshold: (rule.fixed_rate < 1.0)
                    .then(|| (rule.fixed_rate.max(0.0) * 18_446_744_073_709_551_616.0) as u64),
                reservoir: AtomicU64::new(0),
                rule,
            })
            .collect();
        Self { rules }
    }

    /// Decides for one request now.
    pub fn decide(&self, request: &SampleRequest<'_>) -> Sampled {
        self.decide_at(request, epoch_seconds(), random_u64())
    }

    /// Decides for one request in wall-clock second `second`, drawing `random` (uniform over
    /// `u64`) for the fixed rate.
    pub fn decide_at(&self, request: &SampleRequest<'_>, second: u32, random: u64) -> Sampled {
        let Some(rule) = self.rules.iter().find(|rule| rule.matches(request)) else {
            return Sampled::No;
        };
        if rule.take_reservoir(second) {
            return Sampled::Reservoir;
        }
        match rule.threshold {
            None => Sampled::FixedRate,
            Some(threshold) if random < threshold => Sampled::FixedRate,
            Some(_) => Sampled::No,
        }
    }

    /// The name of the rule that would decide for `request`.
    pub fn rule_for(&self, request: &SampleRequest<'_>) -> Option<&str> {
        self.rules
            .iter()
            .find(|rule| rule.matches(request))
            .map(|rule| rule.rule.name.as_str())
    }
}

impl CompiledRule {
    fn matches(&self, request: &SampleRequest<'_>) -> bool {
        if self.matches_everything {
            return true;
        }
        let host = strip_port(request.host);
        glob_match(self.rule.path.as_bytes(), request.path.as_bytes())
            && glob_match(self.rule.api.as_bytes(), request.api.as_bytes())
            && glob_match(self.rule.stage.as_bytes(), request.stage.as_bytes())
            && glob_match_ignore_case(self.method.as_bytes(), request.method.as_bytes())
            && glob_match_ignore_case(self.host.as_bytes(), host.as_bytes())
    }

    /// Takes one trace from this second's reservoir, if any is left.
    fn take_reservoir(&self, second: u32) -> bool {
        let limit = self.rule.reservoir_per_second;
        if limit == 0 {
            return false;
        }
        let mut current = self.reservoir.load(Ordering::Relaxed);
        loop {
            let (at, taken) = ((current >> 32) as u32, current as u32);
            let next = if at == second {
                if taken >= limit {
                    return false;
                }
                current + 1
            } else if at > second {
                // Another thread already moved on to a later second: this request is late.
                return false;
            } else {
                u64::from(second) << 32 | 1
            };
            match self.reservoir.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }
}

/// `example.com:8443` → `example.com`, `[::1]:80` → `[::1]`.
fn strip_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(at)
            if !host[at..].contains(']')
                && (host.starts_with('[') || !host[..at].contains(':')) =>
        {
            &host[..at]
        }
        _ => host,
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of bytes and `?` exactly one.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    glob(pattern, text, |p, t| p == t)
}

fn glob_match_ignore_case(pattern: &[u8], text: &[u8]) -> bool {
    glob(pattern, text, |p, t| p.eq_ignore_ascii_case(&t))
}

/// The linear-time wildcard match: on a mismatch, retry from the last `*` one byte further.
fn glob(pattern: &[u8], text: &[u8], eq: impl Fn(u8, u8) -> bool) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || eq(c, text[t]) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
#[path = "sampling_tests.rs"]
mod tests;
