//! Metric dimensions: which slice of traffic a series describes.
//!
//! Values are bounded by construction: api, stage and route come from the config (route templates,
//! never raw paths), the method label is a route's method or `ANY`.

use std::fmt;
use std::sync::Arc;

/// The dimension set of one series. All `None` is the series for all traffic.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dimensions {
    pub api: Option<Arc<str>>,
    pub stage: Option<Arc<str>>,
    /// The route template, e.g. `/pets/{id}`.
    pub route: Option<Arc<str>>,
    pub method: Option<Arc<str>>,
    /// Set only for requests served by a canary deployment.
    pub canary: Option<bool>,
}

impl Dimensions {
    /// The canonical text form, stable across releases, used as the store's series key:
    /// `api=pets,stage=prod,route=/pets/{id},method=GET` in this fixed order, absent dimensions
    /// left out, `,` `=` and `\` in values escaped with `\`. All traffic is the empty string.
    pub fn canonical(&self) -> String {
        let mut out = String::new();
        let mut push = |name: &str, value: &str| {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(name);
            out.push('=');
            for c in value.chars() {
                if matches!(c, ',' | '=' | '\\') {
                    out.push('\\');
                }
                out.push(c);
            }
        };
        if let Some(v) = &self.api {
            push("api", v);
        }
        if let Some(v) = &self.stage {
            push("stage", v);
        }
        if let Some(v) = &self.route {
            push("route", v);
        }
        if let Some(v) = &self.method {
            push("method", v);
        }
        if let Some(v) = self.canary {
            push("canary", if v { "true" } else { "false" });
        }
        out
    }

    /// Parses the canonical form back; `None` if it is malformed or names an unknown dimension.
    pub fn parse(text: &str) -> Option<Self> {
        let mut dims = Dimensions::default();
        if text.is_empty() {
            return Some(dims);
        }
        let mut pairs = Vec::new();
        let (mut name, mut value, mut in_value, mut escaped) =
            (String::new(), String::new(), false, false);
        for c in text.chars() {
            match (escaped, c) {
                (true, _) => {
                    value.push(c);
                    escaped = false;
                }
                (false, '\\') if in_value => escaped = true,
                (false, '=') if !in_value => in_value = true,
                (false, ',') if in_value => {
                    pairs.push((std::mem::take(&mut name), std::mem::take(&mut value)));
                    in_value = false;
                }
                (false, _) if in_value => value.push(c),
                (false, _) => name.push(c),
            }
        }
        if !in_value || escaped {
            return None;
        }
        pairs.push((name, value));
        for (name, value) in pairs {
            let value: Arc<str> = Arc::from(value.as_str());
            match name.as_str() {
                "api" => dims.api = Some(value),
                "stage" => dims.stage = Some(value),
                "route" => dims.route = Some(value),
                "method" => dims.method = Some(value),
                "canary" => dims.canary = Some(&*value == "true"),
                _ => return None,
            }
        }
        Some(dims)
    }
}

impl fmt::Display for Dimensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.canonical();
        f.write_str(if text.is_empty() {
            "(all traffic)"
        } else {
            &text
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_round_trips() {
        let cases = [
            Dimensions::default(),
            Dimensions {
                api: Some("pets".into()),
                ..Default::default()
            },
            Dimensions {
                api: Some("pets".into()),
                stage: Some("prod".into()),
                route: Some("/a,b=c\\d/{id}".into()),
                method: Some("GET".into()),
                canary: Some(true),
            },
        ];
        for dims in cases {
            let text = dims.canonical();
            assert_eq!(Dimensions::parse(&text), Some(dims.clone()), "{text}");
        }
        assert_eq!(
            Dimensions {
                api: Some("p".into()),
                stage: Some("s".into()),
                ..Default::default()
            }
            .canonical(),
            "api=p,stage=s"
        );
        assert_eq!(Dimensions::parse("colour=red"), None);
        assert_eq!(Dimensions::parse("api"), None);
    }
}
