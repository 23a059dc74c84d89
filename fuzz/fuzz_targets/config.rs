#![no_main]
//! cargo fuzz target `config`: see `jellyfin_sso_proxy_fuzz::config` (fuzz/harness.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| jellyfin_sso_proxy_fuzz::config(data));
