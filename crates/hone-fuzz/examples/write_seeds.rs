//! Writes the seed inputs into `fuzz/corpus/<target>/seed-<n>` (existing files are kept), the
//! starting corpus of `cargo fuzz run <target>`.

use std::path::Path;

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    for (name, _) in hone_fuzz::TARGETS {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir)?;
        for (i, s) in hone_fuzz::seeds::seeds(name).into_iter().enumerate() {
            let p = dir.join(format!("seed-{i}"));
            if !p.exists() {
                std::fs::write(&p, s)?;
            }
        }
        println!("{}", dir.display());
    }
    Ok(())
}
