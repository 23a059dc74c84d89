//! Replays the fuzz targets' seed corpora (fuzz/seeds/<target>/) and every kept crash
//! (fuzz/regressions/<target>/) through the same harness the fuzzer runs (fuzz/harness.rs),
//! so a normal `cargo test` fails if a parser ever panics on one of them again or one of the
//! harness's properties stops holding. The fuzzing itself: docs/architecture.md, "Testing".

#[allow(dead_code)]
#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::Path;

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect()).unwrap_or_default();
    v.sort();
    v
}

#[test]
fn every_seed_and_kept_crash_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (name, target) in harness::TARGETS {
        let seeds = files(&root.join("seeds").join(name));
        assert!(seeds.len() >= 3, "fuzz/seeds/{name} has {} seeds; every target starts from real inputs", seeds.len());
        for file in seeds.iter().chain(&files(&root.join("regressions").join(name))) {
            let data = std::fs::read(file).unwrap();
            if let Err(panic) = std::panic::catch_unwind(|| target(&data)) {
                let msg = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
                panic!("{} fails target {name}: {msg}", file.display());
            }
        }
    }
}
