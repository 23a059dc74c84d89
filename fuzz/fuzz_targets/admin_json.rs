#![no_main]
//! cargo fuzz target `admin_json`: see `jellyfin_sso_proxy_fuzz::admin_json` (fuzz/harness.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| jellyfin_sso_proxy_fuzz::admin_json(data));
