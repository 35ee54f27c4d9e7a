//! Unit tests of the run configuration: parsing, defaults, overrides, errors and the echo.

use hone_model::llama::MODULES;

use super::*;

const EXAMPLE: &str = r#"
[model]
base = "smollm2"          # name or path (.gguf or HF folder)
quantize = "none"         # or "nf4"
[lora]
r = 16
alpha = 32
dropout = 0.05
target_modules = ["q_proj", "k_proj", "v_proj", "o_proj"]
layers = "all"            # or e.g. "22-29"
[optim]
lr = 2e-4
epochs = 3
batch_size = 8
grad_accum = 1
[data]
train = "train.jsonl"
validation = "val.jsonl"  # optional
[output]
dir = "runs/nda-v1"
"#;

fn parse(text: &str, sets: &[&str]) -> Result<TrainConfig> {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    TrainConfig::parse(text, Path::new("/cfg/run.toml"), &sets)
}

fn err(text: &str, sets: &[&str]) -> String {
    parse(text, sets).unwrap_err().to_string()
}

const MIN: &str = "[data]\ntrain = \"t.jsonl\"\n";

#[test]
fn the_issue_example_parses_with_defaults() {
    let c = parse(EXAMPLE, &[]).unwrap();
    assert_eq!(c.model.base, "smollm2");
    assert_eq!(c.model.quantize, Quantize::None);
    assert_eq!(c.model.dtype, ComputeDtype::Auto);
    assert_eq!(c.lora.r, 16);
    assert_eq!(c.lora.alpha, 32.0);
    assert_eq!(c.lora.dropout, 0.05);
    assert_eq!(c.lora.target_modules, DEFAULT_TARGETS);
    assert_eq!(c.lora.layers, LayerSelection::All);
    assert_eq!(c.optim.lr, 2e-4);
    assert_eq!(c.optim.weight_decay, 0.01);
    assert_eq!(c.optim.warmup_ratio, 0.05);
    assert_eq!(c.optim.scheduler, Scheduler::Cosine);
    assert_eq!(c.optim.grad_clip, 1.0);
    assert_eq!((c.optim.batch_size, c.optim.grad_accum), (8, 1));
    assert_eq!((c.optim.epochs, c.optim.max_seq_len), (3, 512));
    assert_eq!((c.optim.seed, c.optim.patience), (42, 1));
    assert!(!c.train.fast && c.train.checkpoint_every_epoch);
    assert_eq!(c.train.top_layers, None);
    assert_eq!(c.data.train, Path::new("/cfg/train.jsonl"));
    assert_eq!(
        c.data.validation.as_deref(),
        Some(Path::new("/cfg/val.jsonl"))
    );
    assert_eq!(c.output.dir, Path::new("/cfg/runs/nda-v1"));
    assert_eq!(c.source, Path::new("/cfg/run.toml"));
}

#[test]
fn minimal_config_gets_every_default() {
    let c = parse(MIN, &[]).unwrap();
    let full = parse(EXAMPLE, &[]).unwrap();
    assert_eq!(c.lora, full.lora);
    assert_eq!(c.optim, full.optim);
    assert_eq!(c.model, full.model);
    assert_eq!(c.data.validation, None);
    assert_eq!(c.output.dir, Path::new("/cfg/runs/run"));
}

#[test]
fn absolute_paths_and_model_paths() {
    let c = parse(
        "[model]\nbase = \"models/x.gguf\"\n[data]\ntrain = \"/abs/t.jsonl\"\n",
        &[],
    )
    .unwrap();
    assert_eq!(c.model.base, "/cfg/models/x.gguf");
    assert_eq!(c.data.train, Path::new("/abs/t.jsonl"));
    let c = parse("[model]\nbase = \"/m/hf\"\n[data]\ntrain = \"t\"\n", &[]).unwrap();
    assert_eq!(c.model.base, "/m/hf");
}

#[test]
fn overrides_replace_any_key_with_typed_values() {
    let c = parse(
        EXAMPLE,
        &[
            "optim.lr=1e-4",
            "lora.target_modules=[\"q_proj\"]",
            "lora.r = 8",
            "model.base=other",
            "model.quantize=nf4",
            "lora.layers=22-29",
            "train.fast=true",
            "data.train=d/new.jsonl",
            "optim.seed=7",
            "lora.alpha=16.5",
        ],
    )
    .unwrap();
    assert_eq!(c.optim.lr, 1e-4);
    assert_eq!(c.lora.target_modules, vec!["q_proj"]);
    assert_eq!(c.lora.r, 8);
    assert_eq!(c.model.base, "other");
    assert_eq!(c.model.quantize, Quantize::Nf4);
    assert_eq!(c.lora.layers, LayerSelection::Range(22, 29));
    assert!(c.train.fast);
    assert_eq!(c.data.train, Path::new("/cfg/d/new.jsonl"));
    assert_eq!(c.optim.seed, 7);
    assert_eq!(c.lora.alpha, 16.5);
    // A section missing from the file is created.
    let c = parse(MIN, &["output.dir=\"out dir\"", "lora.layers=[3, 1]"]).unwrap();
    assert_eq!(c.output.dir, Path::new("/cfg/out dir"));
    assert_eq!(c.lora.layers, LayerSelection::List(vec![1, 3]));
}

#[test]
fn override_errors_name_the_key_and_the_flag() {
    let e = err(MIN, &["optim.lrr=1"]);
    assert!(e.contains("(--set)") && e.contains("`optim.lrr`"), "{e}");
    assert!(e.contains("lr, weight_decay"), "{e}");
    let e = err(MIN, &["lr=1"]);
    assert!(e.contains("dotted key"), "{e}");
    let e = err(MIN, &["optim.lr"]);
    assert!(e.contains("key=value"), "{e}");
    let e = err(MIN, &["optimizer.lr=1"]);
    assert!(e.contains("unknown section `optimizer`"), "{e}");
    let e = err(MIN, &["optim.lr=-1"]);
    assert!(
        e.contains("(--set)") && e.contains("`optim.lr`") && e.contains("> 0"),
        "{e}"
    );
    let e = err(MIN, &["lora.r=abc"]);
    assert!(
        e.contains("`lora.r`") && e.contains("expected an integer"),
        "{e}"
    );
}

#[test]
fn unknown_keys_and_sections_are_rejected_with_the_known_ones() {
    let e = err("[optim]\nlearning_rate = 1\n[data]\ntrain = \"t\"\n", &[]);
    assert!(
        e.starts_with("/cfg/run.toml: `optim.learning_rate`: unknown key"),
        "{e}"
    );
    assert!(e.contains("known keys in [optim]: lr, weight_decay"), "{e}");
    let e = err("[trainer]\nx = 1\n", &[]);
    assert!(
        e.contains("`trainer`: unknown section") && e.contains("model, lora, optim"),
        "{e}"
    );
    let e = err("lr = 1\n", &[]);
    assert!(e.contains("`lr`: unknown top-level key"), "{e}");
    let e = err("lora = 1\n", &[]);
    assert!(e.contains("`lora`: expected a [lora] section"), "{e}");
}

#[test]
fn syntax_errors_give_file_line_and_column() {
    let e = err("[data]\ntrain = \"t\"\n[lora]\nr = = 3\n", &[]);
    assert!(e.starts_with("/cfg/run.toml: line 4, column"), "{e}");
}

#[test]
fn r_zero_is_rejected() {
    let e = err(&format!("{MIN}[lora]\nr = 0\n"), &[]);
    assert_eq!(e, "/cfg/run.toml: `lora.r`: must be at least 1, got 0");
    let e = err(&format!("{MIN}[lora]\nr = -2\n"), &[]);
    assert!(e.contains("`lora.r`: must not be negative"), "{e}");
}

#[test]
fn unknown_target_module_is_rejected() {
    let e = err(
        &format!("{MIN}[lora]\ntarget_modules = [\"q_proj\", \"qkv\"]\n"),
        &[],
    );
    assert!(
        e.contains("`lora.target_modules`: unknown module \"qkv\""),
        "{e}"
    );
    assert!(e.contains("gate_proj") && e.contains("all-linear"), "{e}");
    let e = err(&format!("{MIN}[lora]\ntarget_modules = []\n"), &[]);
    assert!(e.contains("at least one module"), "{e}");
    let e = err(&format!("{MIN}[lora]\ntarget_modules = [1]\n"), &[]);
    assert!(e.contains("expected a list of module names"), "{e}");
}

#[test]
fn all_linear_expands_to_the_seven_projections() {
    let c = parse(
        &format!("{MIN}[lora]\ntarget_modules = \"all-linear\"\n"),
        &[],
    )
    .unwrap();
    assert_eq!(c.lora.target_modules, MODULES);
    let c = parse(MIN, &["lora.target_modules=[\"v_proj\", \"all-linear\"]"]).unwrap();
    assert_eq!(c.lora.target_modules.len(), 7);
    assert_eq!(c.lora.target_modules[0], "v_proj");
}

#[test]
fn lr_must_be_positive() {
    for v in ["0", "-1e-4", "0.0"] {
        let e = err(&format!("{MIN}[optim]\nlr = {v}\n"), &[]);
        assert!(e.contains("`optim.lr`: must be > 0"), "{e}");
    }
    let e = err(&format!("{MIN}[optim]\nlr = nan\n"), &[]);
    assert!(e.contains("`optim.lr`: expected a finite number"), "{e}");
    let e = err(&format!("{MIN}[optim]\nlr = \"fast\"\n"), &[]);
    assert!(
        e.contains("`optim.lr`: expected a finite number, got a string"),
        "{e}"
    );
}

#[test]
fn a_number_too_big_for_f32_is_refused() {
    // Found by the train_toml fuzz target: alpha = 1.6e108 was accepted, kept as f32 (inf),
    // and the echoed train_config.toml then failed to read back on --resume.
    let e = err(&format!("{MIN}[lora]\nalpha = 1.6e108\n"), &[]);
    assert!(
        e.contains("`lora.alpha`: must be at most 3.4028235e38 in size"),
        "{e}"
    );
}

#[test]
fn other_ranges_are_checked() {
    for (k, v, msg) in [
        ("lora", "dropout = 1.0", "`lora.dropout`: must be in [0, 1)"),
        ("lora", "alpha = 0", "`lora.alpha`: must be > 0"),
        (
            "optim",
            "batch_size = 0",
            "`optim.batch_size`: must be at least 1",
        ),
        (
            "optim",
            "grad_accum = 0",
            "`optim.grad_accum`: must be at least 1",
        ),
        ("optim", "epochs = 0", "`optim.epochs`: must be at least 1"),
        (
            "optim",
            "warmup_ratio = 2",
            "`optim.warmup_ratio`: must be in [0, 1]",
        ),
        ("optim", "grad_clip = -1", "`optim.grad_clip`: must be >= 0"),
        (
            "optim",
            "scheduler = \"step\"",
            "`optim.scheduler`: unknown value \"step\"",
        ),
        (
            "model",
            "quantize = \"int8\"",
            "`model.quantize`: unknown value \"int8\"",
        ),
        (
            "model",
            "dtype = \"f16\"",
            "`model.dtype`: unknown value \"f16\"",
        ),
        ("train", "fast = 1", "`train.fast`: expected true or false"),
        (
            "train",
            "keep = \"first\"",
            "`train.keep`: unknown value \"first\"",
        ),
    ] {
        let e = err(&format!("{MIN}[{k}]\n{v}\n"), &[]);
        assert!(e.contains(msg), "{v}: {e}");
    }
}

#[test]
fn missing_training_data_is_an_error() {
    let e = err("[lora]\nr = 4\n", &[]);
    assert!(e.contains("`data.train`: missing"), "{e}");
}

#[test]
fn layer_selections() {
    let layers = |v: &str| parse(&format!("{MIN}[lora]\nlayers = {v}\n"), &[]);
    assert_eq!(layers("\"all\"").unwrap().lora.layers, LayerSelection::All);
    assert_eq!(
        layers("\"22-29\"").unwrap().lora.layers,
        LayerSelection::Range(22, 29)
    );
    assert_eq!(
        layers("[23, 22]").unwrap().lora.layers,
        LayerSelection::List(vec![22, 23])
    );
    assert_eq!(
        layers("\"1,5\"").unwrap().lora.layers,
        LayerSelection::List(vec![1, 5])
    );
    assert_eq!(
        layers("7").unwrap().lora.layers,
        LayerSelection::List(vec![7])
    );
    let c = layers("\"22-29\"").unwrap();
    assert_eq!(c.lora_layers(30).unwrap(), (22..30).collect::<Vec<_>>());
    let spec = c.lora_spec(30).unwrap();
    assert_eq!(spec.layers.len(), 8);
    assert_eq!((spec.r, spec.alpha), (16, 32.0));
    assert_eq!(
        layers("\"all\"").unwrap().lora_layers(3).unwrap(),
        vec![0, 1, 2]
    );
}

#[test]
fn bad_layer_ranges_are_rejected() {
    let layers = |v: &str| err(&format!("{MIN}[lora]\nlayers = {v}\n"), &[]);
    assert!(layers("\"29-22\"").contains("`lora.layers`: range \"29-22\" is empty"));
    assert!(layers("\"a-b\"").contains("`lora.layers`: \"a-b\" is not \"all\""));
    assert!(layers("\"some\"").contains("`lora.layers`"));
    assert!(layers("[]").contains("the list of layers is empty"));
    assert!(layers("[-1]").contains("layer index -1 is negative"));
    assert!(layers("[\"x\"]").contains("expected a list of layer indices"));
    // Out of range for the model: only known with the model.
    let c = parse(&format!("{MIN}[lora]\nlayers = \"22-30\"\n"), &[]).unwrap();
    let e = c.lora_spec(30).unwrap_err().to_string();
    assert!(
        e.contains("`lora.layers`: layer 30 does not exist: the model has 30 layers (0-29)"),
        "{e}"
    );
}

#[test]
fn top_layers_and_fast_mode() {
    let c = parse(MIN, &["train.top_layers=8", "train.fast=true"]).unwrap();
    assert_eq!(c.lora_layers(30).unwrap(), (22..30).collect::<Vec<_>>());
    let e = c.lora_layers(4).unwrap_err().to_string();
    assert!(e.contains("`train.top_layers`: 8 layers asked for"), "{e}");
    let e = err(MIN, &["train.fast=true"]);
    assert!(
        e.contains("`train.fast`") && e.contains("top layers"),
        "{e}"
    );
    let e = err(MIN, &["train.top_layers=2", "lora.layers=3-5"]);
    assert!(
        e.contains("`train.top_layers`: conflicts with lora.layers"),
        "{e}"
    );
    let e = err(MIN, &["train.top_layers=0"]);
    assert!(e.contains("must be at least 1"), "{e}");
}

#[test]
fn echo_round_trips() {
    for sets in [
        vec![],
        vec![
            "lora.layers=[1, 4]",
            "train.top_layers=3",
            "lora.layers=all",
        ],
        vec![
            "lora.layers=2-5",
            "train.fast=true",
            "lora.dropout=0.1",
            "optim.lr=3e-5",
        ],
    ] {
        let c = parse(EXAMPLE, &sets).unwrap();
        let text = c.to_toml();
        let back =
            TrainConfig::parse(&text, Path::new("/elsewhere/train_config.toml"), &[]).unwrap();
        let mut back = back;
        back.source = c.source.clone();
        assert_eq!(back, c, "{text}");
    }
    let text = parse(EXAMPLE, &[]).unwrap().to_toml();
    assert!(text.contains("[optim]\nlr = 0.0002\n"), "{text}");
    assert!(text.contains("dropout = 0.05\n"), "{text}");
}

#[test]
fn load_reads_the_file_and_resolves_against_its_folder() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("run.toml");
    std::fs::write(&p, EXAMPLE).unwrap();
    let c = TrainConfig::load(&p, &["optim.epochs=5".into()]).unwrap();
    assert_eq!(c.optim.epochs, 5);
    assert_eq!(c.data.train, d.path().join("train.jsonl"));
    let out = c.write_echo(d.path()).unwrap();
    let back = TrainConfig::load(&out, &[]).unwrap();
    assert_eq!(back.optim, c.optim);
    assert_eq!(back.data, c.data);
    let e = TrainConfig::load(&d.path().join("missing.toml"), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.toml"), "{e}");
}

#[test]
fn the_schema_is_read_off_the_structs() {
    let sections: Vec<&str> = schema().iter().map(|(s, _)| *s).collect();
    assert_eq!(
        sections,
        ["model", "lora", "optim", "train", "data", "output"]
    );
    assert_eq!(
        known_keys("train").unwrap(),
        [
            "fast",
            "top_layers",
            "checkpoint_every_epoch",
            "log_every",
            "keep"
        ]
    );
    assert_eq!(known_keys("optim").unwrap().len(), 14);
    assert_eq!(known_keys("source"), None);
}

#[test]
fn every_key_set_round_trips_through_the_echo() {
    let c = parse(
        MIN,
        &[
            "model.quantize=nf4",
            "model.dtype=BF16",
            "lora.alpha=0.1",
            "lora.layers=[3, 5]",
            "optim.scheduler=constant",
            "optim.adam_eps=1e-6",
            "optim.patience=0",
            "train.checkpoint_every_epoch=false",
            "train.keep=last",
            "data.validation=v.jsonl",
            "lora.init=runs/v1",
            "data.format=review",
            "output.dir=/o",
        ],
    )
    .unwrap();
    assert_eq!(c.model.dtype, ComputeDtype::Bf16);
    // the initial adapter, relative to the config's folder, is echoed absolute
    assert_eq!(c.lora.init.as_deref(), Some(Path::new("/cfg/runs/v1")));
    let text = c.to_toml();
    assert!(text.contains("init = \"/cfg/runs/v1\""), "{text}");
    assert!(!parse(MIN, &[]).unwrap().to_toml().contains("init"));
    assert!(
        text.contains("format = \"review\"") && text.contains("alpha = 0.1\n"),
        "{text}"
    );
    assert!(text.contains("keep = \"last\""), "{text}");
    assert!(!parse(MIN, &[]).unwrap().to_toml().contains("keep"));
    let mut back = TrainConfig::parse(&text, Path::new("/x/train_config.toml"), &[]).unwrap();
    back.source.clone_from(&c.source);
    assert_eq!(back, c, "{text}");
}
