//! Annotations under the prefixes Lintel reads. Each one Lintel understands is parsed into
//! the Ingress's typed [`Policy`]; every other one under those prefixes is listed, so a user
//! migrating from ingress-nginx or the AWS Load Balancer Controller sees what did not carry
//! over. A value that does not parse is a diagnostic, never a silent default.

mod upstream;

use std::collections::BTreeMap;

use super::CompileOptions;
use crate::diagnostic::{Diagnostic, Subject};
use crate::table::Policy;
use crate::table::allow::{CidrList, FilterMode, SourceFilter};

/// Prefixes whose annotations Lintel reads (its own, ingress-nginx's, ALB's).
const PREFIXES: [&str; 3] = ["lintel.dev/", "nginx.ingress.kubernetes.io/", "alb.ingress.kubernetes.io/"];

/// Allowlist annotations, the first present wins.
const ALLOW: [&str; 4] = [
    "lintel.dev/allow-source-cidrs",
    "nginx.ingress.kubernetes.io/allowlist-source-range",
    "nginx.ingress.kubernetes.io/whitelist-source-range",
    "alb.ingress.kubernetes.io/inbound-cidrs",
];
const DENY: [&str; 2] = ["lintel.dev/deny-source-cidrs", "nginx.ingress.kubernetes.io/denylist-source-range"];
const ALLOW_MODE: &str = "lintel.dev/allow-source-mode";
const MAX_BODY: [&str; 2] = ["lintel.dev/max-body-size", "nginx.ingress.kubernetes.io/proxy-body-size"];

/// Annotations that Lintel understands. Each feature adds its keys here and parses them in
/// [`policy`].
const KNOWN: &[&[&str]] = &[&ALLOW, &DENY, &[ALLOW_MODE], &MAX_BODY, &super::ssl::KEYS, upstream::KNOWN];

/// The annotations of one Ingress, with what is needed to report on them.
struct Annotations<'a> {
    map: Option<&'a BTreeMap<String, String>>,
    subject: &'a Subject,
    diagnostics: &'a mut Vec<Diagnostic>,
}

impl Annotations<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.map.and_then(|m| m.get(key)).map(String::as_str)
    }

    /// The first of `keys` that is set; the others that are set get a warning.
    fn first_of(&mut self, keys: &[&'static str]) -> Option<(&'static str, String)> {
        let mut found: Option<(&'static str, String)> = None;
        for key in keys {
            let Some(value) = self.get(key).map(str::to_owned) else { continue };
            match &found {
                None => found = Some((key, value)),
                Some((winner, _)) => {
                    let msg = format!("ignored: {winner} is set too and takes precedence");
                    self.warn(key, msg);
                }
            }
        }
        found
    }

    fn error(&mut self, key: &str, message: impl Into<String>) {
        let field = format!("metadata.annotations[{key:?}]");
        self.diagnostics.push(Diagnostic::error(self.subject.clone(), field, message));
    }

    fn warn(&mut self, key: &str, message: impl Into<String>) {
        let field = format!("metadata.annotations[{key:?}]");
        self.diagnostics.push(Diagnostic::warning(self.subject.clone(), field, message));
    }
}

/// Parses the annotations of one Ingress into its policy.
pub(super) fn policy(
    map: Option<&BTreeMap<String, String>>,
    options: &CompileOptions,
    subject: &Subject,
    diagnostics: &mut Vec<Diagnostic>,
) -> Policy {
    let mut a = Annotations { map, subject, diagnostics };
    let mut policy =
        Policy { source: source_filter(&mut a, options), max_body_size: max_body_size(&mut a), ..Policy::default() };
    if let Some(map) = map {
        super::ssl::parse(map, &mut policy, subject, a.diagnostics);
        policy.upstream = upstream::policy(map, subject, a.diagnostics);
    }
    for key in map.into_iter().flat_map(|m| m.keys()) {
        let known = KNOWN.iter().any(|group| group.contains(&key.as_str()));
        if PREFIXES.iter().any(|p| key.starts_with(p)) && !known {
            a.warn(key, format!("annotation {key} is not supported by Lintel and has no effect"));
        }
    }
    policy
}

/// Allow and deny lists. A list that does not parse makes the filter refuse everything: an
/// allowlist must never fail open.
fn source_filter(a: &mut Annotations<'_>, options: &CompileOptions) -> SourceFilter {
    let mut filter = SourceFilter::default();
    let mut parse = |a: &mut Annotations<'_>, found: Option<(&'static str, String)>| {
        let (key, value) = found?;
        match value.parse::<CidrList>() {
            Ok(list) => Some(list),
            Err(err) => {
                a.error(key, format!("{err}; every request to this Ingress is refused until it is fixed"));
                filter.invalid = true;
                None
            }
        }
    };
    let allow = a.first_of(&ALLOW);
    let allow_set = allow.is_some();
    filter.allow = parse(a, allow);
    let deny = a.first_of(&DENY);
    filter.deny = parse(a, deny);
    if !allow_set {
        filter.allow = options.default_allow.clone();
    }
    match a.get(ALLOW_MODE) {
        None | Some("enforce") => {}
        Some("report") => filter.mode = FilterMode::Report,
        Some(other) => {
            // An unknown mode must not weaken the filter: keep enforcing.
            a.error(ALLOW_MODE, format!("{other:?} is not a mode (expected enforce or report); enforcing"));
        }
    }
    filter
}

fn max_body_size(a: &mut Annotations<'_>) -> Option<u64> {
    let (key, value) = a.first_of(&MAX_BODY)?;
    match parse_size(&value) {
        Some(0) => None, // nginx: 0 turns the check off
        Some(n) => Some(n),
        None => {
            a.error(key, format!("{value:?} is not a size (like 8m, 512k, 1g or a number of bytes); no limit applied"));
            None
        }
    }
}

/// `1024`, `512k`, `8m`, `1g` (also `kb`/`ki`/`kib` and the like): binary multiples, as nginx.
pub(crate) fn parse_size(value: &str) -> Option<u64> {
    let value = value.trim().to_ascii_lowercase();
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = value.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let shift = match unit.trim() {
        "" | "b" => 0,
        "k" | "kb" | "ki" | "kib" => 10,
        "m" | "mb" | "mi" | "mib" => 20,
        "g" | "gb" | "gi" | "gib" => 30,
        _ => return None,
    };
    number.checked_mul(1 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)], options: &CompileOptions) -> (Policy, Vec<Diagnostic>) {
        let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let mut diagnostics = Vec::new();
        let subject = Subject::object("Ingress", "ns", "i");
        (policy(Some(&map), options, &subject, &mut diagnostics), diagnostics)
    }

    #[test]
    fn every_allowlist_spelling_is_read() {
        for key in ALLOW {
            let (p, d) = parse(&[(key, "10.0.0.0/8")], &CompileOptions::default());
            assert!(d.is_empty(), "{key}: {d:?}");
            assert_eq!(p.source.allow, Some("10.0.0.0/8".parse().unwrap()), "{key}");
        }
    }

    #[test]
    fn a_bad_entry_fails_closed_and_names_the_entry() {
        let (p, d) = parse(
            &[("nginx.ingress.kubernetes.io/whitelist-source-range", "10.0.0.0/8, 300.1.1.1")],
            &CompileOptions::default(),
        );
        assert!(p.source.invalid);
        assert!(p.source.check("10.0.0.1".parse().unwrap()).is_err());
        assert_eq!(d.len(), 1);
        assert!(d[0].message.contains("\"300.1.1.1\""), "{}", d[0]);
    }

    #[test]
    fn the_default_allowlist_applies_only_where_an_ingress_sets_none() {
        let options =
            CompileOptions { default_allow: Some("192.168.0.0/16".parse().unwrap()), ..CompileOptions::default() };
        let (p, _) = parse(&[], &options);
        assert_eq!(p.source.allow, options.default_allow);
        let (p, _) = parse(&[("lintel.dev/allow-source-cidrs", "10.0.0.0/8")], &options);
        assert_eq!(p.source.allow, Some("10.0.0.0/8".parse().unwrap()));
    }

    #[test]
    fn lintel_annotations_take_precedence_with_a_warning() {
        let (p, d) = parse(
            &[
                ("lintel.dev/allow-source-cidrs", "10.0.0.0/8"),
                ("alb.ingress.kubernetes.io/inbound-cidrs", "0.0.0.0/0"),
            ],
            &CompileOptions::default(),
        );
        assert_eq!(p.source.allow, Some("10.0.0.0/8".parse().unwrap()));
        assert_eq!(d.len(), 1);
        assert!(d[0].field.contains("inbound-cidrs"));
    }

    #[test]
    fn report_mode_and_bad_modes() {
        let (p, _) = parse(&[(ALLOW_MODE, "report")], &CompileOptions::default());
        assert_eq!(p.source.mode, FilterMode::Report);
        let (p, d) = parse(&[(ALLOW_MODE, "off")], &CompileOptions::default());
        assert_eq!(p.source.mode, FilterMode::Enforce);
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn body_sizes() {
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("8m"), Some(8 << 20));
        assert_eq!(parse_size("8M"), Some(8 << 20));
        assert_eq!(parse_size("512k"), Some(512 << 10));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("1Gi"), Some(1 << 30));
        assert_eq!(parse_size("1.5m"), None);
        assert_eq!(parse_size("m"), None);
        assert_eq!(parse_size("99999999999999999999g"), None);
        let (p, _) = parse(&[("nginx.ingress.kubernetes.io/proxy-body-size", "0")], &CompileOptions::default());
        assert_eq!(p.max_body_size, None);
        let (p, d) = parse(&[("lintel.dev/max-body-size", "big")], &CompileOptions::default());
        assert_eq!((p.max_body_size, d.len()), (None, 1));
    }
}
