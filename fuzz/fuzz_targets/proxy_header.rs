//! The PROXY protocol header parser never panics and never claims more bytes than it has.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lintel::proxy::client_addr::{Parsed, parse_header};

fuzz_target!(|data: &[u8]| {
    if let Ok(Parsed::Header { len, .. }) = parse_header(data) {
        assert!(len <= data.len());
    }
});
