//! Path normalisation never panics, and what it lets through is a fixed point with no dot
//! segment, repeated slash or encoded separator left to smuggle a different route match.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lintel::proxy::normalize::normalize_path;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else { return };
    if let Ok(normal) = normalize_path(path) {
        assert_eq!(normalize_path(&normal).as_deref(), Ok(normal.as_ref()));
        assert!(!normal.contains("//"));
        assert!(!normal.split('/').any(|s| s == "." || s == ".."));
        let lower = normal.to_ascii_lowercase();
        assert!(!lower.contains("%2f") && !lower.contains("%5c") && !lower.contains("%2e"));
    }
});
