//! The configuration as people meet it: parse errors that name the key's path with a hint
//! (the closest known key, the expected format, the default), and `lintel config --print`,
//! the effective configuration with where each value came from (default, file or flag).

use std::fmt;

use serde_norway::Value;

use crate::config::Config;

/// A configuration file that does not parse: which key, what is wrong, what would be right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path of the key (`timeouts.connect`); empty for the file as a whole.
    pub key: String,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)?;
        } else {
            write!(f, "{}: {}", self.key, self.message)?;
        }
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

/// Parses a configuration file; an empty one (or only comments) is the defaults.
pub fn parse(text: &str) -> Result<Config, Problem> {
    if matches!(serde_norway::from_str::<Value>(text), Ok(Value::Null)) {
        return Ok(Config::default());
    }
    let deserializer = serde_norway::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let key = err.path().to_string();
        let key = if key == "." { String::new() } else { key };
        let mut message = err.into_inner().to_string();
        // serde_norway names the enclosing key itself; the full path is already in `key`.
        if let Some((head, rest)) = message.split_once(": ")
            && !head.is_empty()
            && key.starts_with(head)
        {
            message = rest.to_owned();
        }
        let hint = hint(&key, &message);
        Problem { key, message, hint }
    })
}

/// What would have been right at `key`, given serde's `message`.
fn hint(key: &str, message: &str) -> Option<String> {
    if let Some((_, rest)) = message.split_once("unknown field `") {
        let (unknown, rest) = rest.split_once('`')?;
        let expected: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
        let closest = expected
            .iter()
            .map(|k| (strsim::levenshtein(unknown, k), *k))
            .filter(|(d, k)| *d <= 3.max(k.len() / 3))
            .min();
        return Some(match closest {
            Some((_, k)) => format!("did you mean `{k}`?"),
            None => format!("known keys here: {}", expected.join(", ")),
        });
    }
    let last = key.rsplit('.').next().unwrap_or(key);
    let format = if DURATION_KEYS.contains(&last) || key.starts_with("timeouts.") {
        Some("durations look like 500ms, 5s, 2m or 1h".to_owned())
    } else if last.ends_with("-addr") {
        Some("an IP address and a port, such as 0.0.0.0:8080 or [::]:8080".to_owned())
    } else if last == "sample" {
        Some("a share from 0 (log nothing) to 1 (log every request)".to_owned())
    } else {
        None
    };
    let default = default_at(key).map(|d| format!("the default is {d}"));
    match (format, default) {
        (Some(f), Some(d)) => Some(format!("{f}; {d}")),
        (f, d) => f.or(d),
    }
}

/// Keys holding durations, wherever they are.
const DURATION_KEYS: [&str; 3] = ["grace-period", "shutdown-delay", "election-lease-duration"];

/// The default value at a dotted key, as YAML.
fn default_at(key: &str) -> Option<String> {
    let defaults = serde_norway::to_value(Config::default()).ok()?;
    let value = lookup(&defaults, key)?;
    if matches!(value, Value::Mapping(_)) {
        return None;
    }
    Some(scalar(value))
}

fn lookup<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    key.split('.').filter(|k| !k.is_empty()).try_fold(value, |v, k| v.get(k))
}

fn scalar(value: &Value) -> String {
    match serde_norway::to_string(value) {
        Ok(text) => text.trim_end().to_owned(),
        Err(_) => "?".to_owned(),
    }
}

/// Where one setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Default,
    File,
    Flag,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::File => "file",
            Self::Flag => "flag",
        }
    }
}

/// The effective configuration as YAML (usable as a `--config` file), each value followed
/// by its source. `file` is the `--config` file as written, `before_flags` the configuration
/// it gave (or the defaults), `effective` the same after the flags.
pub fn render(effective: &Config, before_flags: &Config, file: Option<&Value>) -> Result<String, serde_norway::Error> {
    let effective = serde_norway::to_value(effective)?;
    let before = serde_norway::to_value(before_flags)?;
    let mut out =
        String::from("# Effective configuration: flags win over the --config file, which wins over defaults.\n");
    walk(&effective, "", 0, &mut |path, depth, key, value| {
        let indent = "  ".repeat(depth);
        let Some(value) = value else {
            out.push_str(&format!("{indent}{key}:\n"));
            return;
        };
        let source = if lookup(&before, path) != Some(value) {
            Source::Flag
        } else if file.and_then(|f| lookup(f, path)).is_some() {
            Source::File
        } else {
            Source::Default
        };
        let line = format!("{indent}{key}: {}", scalar(value));
        out.push_str(&format!("{line:<48} # {}\n", source.as_str()));
    });
    Ok(out)
}

/// Calls `visit(path, depth, key, Some(leaf))` for each leaf and `visit(.., None)` before
/// the leaves of a nested mapping.
/// `(path, depth, key, leaf)`.
type Visit<'a> = dyn FnMut(&str, usize, &str, Option<&Value>) + 'a;

fn walk(value: &Value, prefix: &str, depth: usize, visit: &mut Visit<'_>) {
    let Value::Mapping(map) = value else { return };
    for (key, child) in map {
        let key = key.as_str().unwrap_or_default();
        let path = if prefix.is_empty() { key.to_owned() } else { format!("{prefix}.{key}") };
        match child {
            Value::Mapping(inner) if !inner.is_empty() => {
                visit(&path, depth, key, None);
                walk(child, &path, depth + 1, visit);
            }
            _ => visit(&path, depth, key, Some(child)),
        }
    }
}

/// Leaf keys of `complete` that `written` lacks (dotted paths).
pub fn missing_keys(complete: &Value, written: &Value) -> Vec<String> {
    let mut missing = Vec::new();
    walk(complete, "", 0, &mut |path, _, _, leaf| {
        if leaf.is_some() && lookup(written, path).is_none() {
            missing.push(path.to_owned());
        }
    });
    missing
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn render_says_where_each_value_came_from() {
        let text = "grace-period: 10s\ntimeouts:\n  connect: 2s\n";
        let file: Value = serde_norway::from_str(text).unwrap();
        let before = parse(text).unwrap();
        let mut effective = before.clone();
        effective.shutdown_delay = Duration::from_secs(1);
        let out = render(&effective, &before, Some(&file)).unwrap();
        let line = |key: &str| out.lines().find(|l| l.trim_start().starts_with(key)).unwrap().to_owned();
        assert!(line("grace-period:").ends_with("# file"), "{out}");
        assert!(line("connect:").ends_with("# file"), "{out}");
        assert!(line("connect:").starts_with("  connect: 2s"), "{out}");
        assert!(line("shutdown-delay:").ends_with("# flag"), "{out}");
        assert!(line("http-addr:").ends_with("# default"), "{out}");
        assert!(out.contains("\ntimeouts:\n"), "{out}");
        let reparsed = parse(&out).unwrap();
        assert_eq!(reparsed, effective, "the output is itself a configuration file");
    }
}
