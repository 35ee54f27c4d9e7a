//! Runs one target on files, timing each: `cargo run -p hone-fuzz --example replay -- TARGET FILE...`
//! (a crash or timeout artifact from `fuzz/artifacts/`, say), on stable and with a backtrace.

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().expect("usage: replay TARGET FILE...");
    let (_, run) = hone_fuzz::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no target `{name}`"));
    for f in args {
        let data = std::fs::read(&f).unwrap_or_else(|e| panic!("{f}: {e}"));
        let t0 = std::time::Instant::now();
        run(&data);
        println!(
            "{f}: {} bytes, {:.3} s",
            data.len(),
            t0.elapsed().as_secs_f64()
        );
    }
}
