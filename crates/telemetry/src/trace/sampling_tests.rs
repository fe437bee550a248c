use super::*;
use crate::trace::ids::xorshift64star;

fn request<'a>(api: &'a str, stage: &'a str, method: &'a str, path: &'a str) -> SampleRequest<'a> {
    SampleRequest {
        api,
        stage,
        host: "api.example.com:8443",
        method,
        path,
    }
}

fn rule(name: &str, priority: u32, reservoir: u32, rate: f64) -> SamplingRule {
    SamplingRule::catch_all(name, priority, reservoir, rate)
}

#[test]
fn glob_table() {
    let cases = [
        ("*", "", true),
        ("*", "/anything/at/all", true),
        ("/pets/*", "/pets/1", true),
        ("/pets/*", "/pets/", true),
        ("/pets/*", "/pets", false),
        ("/pets/?", "/pets/1", true),
        ("/pets/?", "/pets/12", false),
        ("*/health", "/v1/health", true),
        ("*/health", "/v1/health/x", false),
        ("/a*b*c", "/aXbYc", true),
        ("/a*b*c", "/aXbYcZ", false),
        ("/a*b*c", "/abbbc", true),
        ("a**b", "ab", true),
        ("", "", true),
        ("", "x", false),
        ("exact", "exact", true),
        ("exact", "Exact", false),
    ];
    for (pattern, text, expected) in cases {
        assert_eq!(
            glob_match(pattern.as_bytes(), text.as_bytes()),
            expected,
            "{pattern} ~ {text}"
        );
    }
}

#[test]
fn rules_match_every_field_and_host_and_method_ignore_case() {
    let mut health = rule("health", 1, 0, 0.0);
    health.path = "*/health".to_owned();
    health.method = "get".to_owned();
    let mut shop = rule("shop-prod", 2, 0, 1.0);
    shop.api = "shop".to_owned();
    shop.stage = "prod".to_owned();
    shop.host = "API.example.com".to_owned();
    let mut other_host = rule("other-host", 3, 0, 1.0);
    other_host.host = "*.internal".to_owned();
    let sampler = Sampler::new(vec![other_host, shop, health], None);
    let cases = [
        (request("shop", "prod", "GET", "/v1/health"), "health"),
        (request("shop", "prod", "POST", "/v1/health"), "shop-prod"),
        (request("shop", "prod", "GET", "/pets"), "shop-prod"),
        (request("shop", "beta", "GET", "/pets"), "default"),
        (request("", "", "GET", "/nowhere"), "default"),
    ];
    for (request, expected) in cases {
        assert_eq!(sampler.rule_for(&request), Some(expected), "{request:?}");
    }
    let internal = SampleRequest {
        host: "db.internal",
        ..request("x", "y", "GET", "/")
    };
    assert_eq!(sampler.rule_for(&internal), Some("other-host"));
}

#[test]
fn first_rule_by_priority_wins_and_decides() {
    // Listed out of order: priority, not position, decides.
    let never = rule("never", 20, 0, 0.0);
    let always = rule("always", 10, 0, 1.0);
    let sampler = Sampler::new(vec![never, always], None);
    let any = request("a", "b", "GET", "/");
    assert_eq!(sampler.rule_for(&any), Some("always"));
    for i in 0..100 {
        assert_eq!(sampler.decide_at(&any, 7, u64::MAX - i), Sampled::FixedRate);
    }
    let sampler = Sampler::new(vec![rule("never", 1, 0, 0.0)], None);
    for i in 0..100 {
        assert_eq!(sampler.decide_at(&any, 7, i), Sampled::No);
    }
}

#[test]
fn reservoir_is_spent_per_second_and_resets_each_second() {
    let sampler = Sampler::new(vec![rule("three", 1, 3, 0.0)], None);
    let any = request("a", "b", "GET", "/");
    for second in [100, 101, 105] {
        let sampled: Vec<Sampled> = (0..10)
            .map(|_| sampler.decide_at(&any, second, 0))
            .collect();
        assert_eq!(&sampled[..3], &[Sampled::Reservoir; 3], "second {second}");
        assert!(
            sampled[3..].iter().all(|s| *s == Sampled::No),
            "second {second}"
        );
    }
    // A straggler from an earlier second does not reopen it.
    assert_eq!(sampler.decide_at(&any, 104, 0), Sampled::No);
}

#[test]
fn reservoir_holds_under_concurrency() {
    let sampler = Sampler::new(vec![rule("ten", 1, 10, 0.0)], None);
    let taken = std::sync::atomic::AtomicU32::new(0);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..1000 {
                    let any = request("a", "b", "GET", "/");
                    if sampler.decide_at(&any, 42, u64::MAX).is_sampled() {
                        taken.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(taken.into_inner(), 10);
}

/// The default rule, 1 per second and then 5 %: with 1000 requests in each second, a second
/// samples 1 + Binomial(999, 0.05) requests (mean 50.95, standard deviation 6.9). The draws are
/// seeded, so the test is deterministic; the bounds are 4.5 standard deviations wide so any
/// reasonable seed passes and a wrong rate (say 4 % or 6 %, 10 away per second) would not over
/// 100 seconds.
#[test]
fn default_rule_samples_one_per_second_plus_five_percent() {
    let sampler = Sampler::new(Vec::new(), None);
    let any = request("a", "b", "GET", "/");
    let mut state = 0x9e37_79b9_7f4a_7c15;
    let mut total_fixed = 0u32;
    for second in 1000..1100 {
        let mut reservoir = 0;
        let mut fixed = 0;
        for _ in 0..1000 {
            match sampler.decide_at(&any, second, xorshift64star(&mut state)) {
                Sampled::Reservoir => reservoir += 1,
                Sampled::FixedRate => fixed += 1,
                Sampled::No => {}
            }
        }
        assert_eq!(reservoir, 1, "second {second}");
        // One second on its own: 49.95 ± 4.5 × 6.89.
        assert!((19..=81).contains(&fixed), "second {second}: {fixed}");
        total_fixed += fixed;
    }
    // 100 seconds: 4995 ± 4.5 × 68.9.
    assert!((4685..=5305).contains(&total_fixed), "{total_fixed}");
}

#[test]
fn fixed_rate_extremes_are_exact() {
    let any = request("a", "b", "GET", "/");
    let all = Sampler::new(vec![rule("all", 1, 0, 1.0)], None);
    assert_eq!(all.decide_at(&any, 1, u64::MAX), Sampled::FixedRate);
    let none = Sampler::new(vec![rule("none", 1, 0, 0.0)], None);
    assert_eq!(none.decide_at(&any, 1, 0), Sampled::No);
    let half = Sampler::new(vec![rule("half", 1, 0, 0.5)], None);
    assert_eq!(
        half.decide_at(&any, 1, u64::MAX / 2 - 1),
        Sampled::FixedRate
    );
    assert_eq!(half.decide_at(&any, 1, u64::MAX / 2 + 2), Sampled::No);
}

#[test]
fn ports_are_stripped_from_hosts() {
    let cases = [
        ("example.com:8443", "example.com"),
        ("example.com", "example.com"),
        ("[::1]:80", "[::1]"),
        ("[::1]", "[::1]"),
        ("::1", "::1"),
    ];
    for (host, expected) in cases {
        assert_eq!(strip_port(host), expected);
    }
}
