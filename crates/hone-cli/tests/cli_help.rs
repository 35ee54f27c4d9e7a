//! `--model` is declared once and flattened into every command that loads a model: each still
//! lists it with its short form, its default and its own help, as before.

use std::process::Command;

/// `hone ARGS -h` (the short help: one entry per option, wrapped only when long).
fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hone"))
        .args(args)
        .arg("-h")
        .output()
        .expect("hone runs");
    assert!(out.status.success(), "hone {args:?} -h failed");
    String::from_utf8(out.stdout).expect("utf-8 help")
}

/// The help entry of the `--model` option: its line and the continuation lines under it.
fn model_entry(help: &str) -> Option<String> {
    let mut lines = help.lines().skip_while(|l| !l.contains("--model <MODEL>"));
    let first = lines.next()?;
    let rest: Vec<&str> = lines
        .take_while(|l| l.starts_with(' ') && !l.trim_start().starts_with('-'))
        .collect();
    Some(
        std::iter::once(first)
            .chain(rest)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

#[test]
fn every_command_that_loads_a_model_takes_model_with_its_default() {
    let generic =
        "A cached model name (`smollm2`; `gemma3-270m`), a `.gguf` file or a Hugging Face \
                   model folder. With an adapter trained by hone on another base, that base";
    let cases: [(&[&str], &str); 9] = [
        (&["generate"], generic),
        (&["chat"], generic),
        (&["serve"], generic),
        (&["bench", "generate"], generic),
        (&["bench", "train"], generic),
        (&["bench", "review"], generic),
        (
            &["review"],
            "The base model: a cached name, a .gguf file or a Hugging Face folder",
        ),
        (
            &["data", "validate"],
            "Model whose tokenizer and chat template count tokens (with --max-seq-len)",
        ),
        (
            &["data", "stats"],
            "Model for token lengths; without a cached model, lengths are in words",
        ),
    ];
    for (cmd, text) in cases {
        let h = help(cmd);
        let e = model_entry(&h).unwrap_or_else(|| panic!("hone {cmd:?}: no --model in\n{h}"));
        assert!(e.contains("-m, --model <MODEL>"), "hone {cmd:?}: {e}");
        assert!(e.contains("[default: smollm2]"), "hone {cmd:?}: {e}");
        assert!(e.contains(text), "hone {cmd:?}: expected `{text}` in: {e}");
    }
}

#[test]
fn bench_serve_names_the_requests_model_without_a_short_form() {
    let h = help(&["bench", "serve"]);
    let e = model_entry(&h).expect("--model");
    assert!(!e.contains("-m,"), "{e}");
    assert!(e.contains("The `model` field of the requests"), "{e}");
    assert!(e.contains("[default: smollm2]"), "{e}");
}

#[test]
fn commands_that_load_one_model_keep_f32_and_adapter() {
    for cmd in [
        &["generate"][..],
        &["chat"],
        &["bench", "generate"],
        &["bench", "train"],
    ] {
        let h = help(cmd);
        assert!(h.contains("--f32"), "hone {cmd:?}: {h}");
        assert!(h.contains("--adapter <ADAPTER>"), "hone {cmd:?}: {h}");
    }
}
