//! Fuzz target: the request-line sniffer (`sniff::parse_head`) and key extraction (`key::extract`)
//! on arbitrary bytes. The oracle, shared with the corpus replay test, is in `../check.rs`.
#![no_main]

#[path = "../check.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    check::check(data);
});
