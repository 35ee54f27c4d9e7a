//! `hone data ...`: import, validate, describe, quality-check, split and synthesize training
//! data. The work is in `hone-data`; this file parses arguments, draws progress bars and prints.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use hone_data::csv::CsvMapping;
use hone_data::qa::QaOptions;
use hone_data::split::{Sizes, Strategy};
use hone_data::tokens::TokenCounter;
use hone_data::{Format, Progress};
use indicatif::{ProgressBar, ProgressStyle};

use super::args::ModelName;

#[derive(Subcommand, Debug)]
pub enum DataCmd {
    /// Reviewed answers from the review queue as training examples (with provenance), checked
    /// against the training data and decontaminated against the evaluation set.
    FromFeedback(super::feedback::FromFeedbackArgs),
    /// Active learning: the pool conversations the adapter is least sure of (near-duplicates
    /// suppressed), queued for labelling in the review queue.
    Select(super::select::SelectArgs),
    /// Drafts by a larger model (any OpenAI-compatible endpoint) for a pool of conversations,
    /// queued for correction in the review queue.
    Draft(super::draft::DraftArgs),
    /// Import a data set in another format.
    #[command(subcommand)]
    Import(ImportCmd),
    /// Report every problem in a data file, with its line and field (exit status 1 if any).
    #[command(mut_arg("model", |a| a.help(
        "Model whose tokenizer and chat template count tokens (with --max-seq-len)"
    )))]
    Validate {
        file: PathBuf,
        #[command(flatten)]
        input: InputArgs,
        /// Flag examples longer than this many tokens (chat template applied). A text too
        /// long to fit by its length alone is flagged without tokenizing it, and a line too
        /// long to fit is skipped without being read into memory (JSONL lines are otherwise
        /// limited to 64 MiB).
        #[arg(long)]
        max_seq_len: Option<usize>,
        #[command(flatten)]
        model: ModelName,
        /// One JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Counts, length histogram (text, and SVG with --svg) and label distribution.
    #[command(mut_arg("model", |a| a.help(
        "Model for token lengths; without a cached model, lengths are in words"
    )))]
    Stats {
        file: PathBuf,
        #[command(flatten)]
        input: InputArgs,
        #[command(flatten)]
        model: ModelName,
        /// Lengths in words, without loading a tokenizer.
        #[arg(long)]
        words: bool,
        /// Write the histogram as SVG here.
        #[arg(long)]
        svg: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Duplicates, near-duplicates, contradictions, contamination and over-represented patterns.
    Qa(QaArgs),
    /// Split into train / valid / test files.
    Split(SplitArgs),
    /// Convert a data file (JSONL in either shape, or CSV) to chat-format JSONL.
    Convert {
        file: PathBuf,
        #[command(flatten)]
        input: InputArgs,
        /// Output file (.jsonl, or .csv for single-turn examples).
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Generate a synthetic data set.
    #[command(subcommand)]
    Synth(SynthCmd),
}

#[derive(Subcommand, Debug)]
pub enum ImportCmd {
    /// ContractNLI's official JSON into span-level chat examples (spans.jsonl) and a
    /// document-level evaluation file (documents.jsonl).
    Contractnli {
        file: PathBuf,
        #[arg(long, short)]
        out: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum SynthCmd {
    /// Synthetic NDAs: nda.json (ContractNLI format), spans.jsonl and documents.jsonl.
    Nda {
        #[arg(long, short)]
        out: PathBuf,
        #[arg(long, default_value_t = 200)]
        docs: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Also this many out-of-scope documents (leases, offer letters, purchase orders,
        /// minutes, notices, recipes) with every check NotMentioned: negatives that teach the
        /// model what is not an NDA.
        #[arg(long, default_value_t = 0)]
        out_of_scope: usize,
    },
    /// A small instruction data set to try `hone pilot` on: which topic an NDA clause
    /// addresses (five review checks or `other`), labels balanced, one example a line.
    Clauses {
        #[arg(long, short)]
        out: PathBuf,
        #[arg(long, default_value_t = 50)]
        examples: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

#[derive(Args, Debug, Clone, Default)]
pub struct InputArgs {
    /// CSV column mapping, FIELD=COLUMN,... (fields: id, group, label, system, instruction,
    /// input, output, user, assistant); implies CSV.
    #[arg(long)]
    map: Option<String>,
}

impl InputArgs {
    fn format(&self, path: &Path) -> Result<Format> {
        let mapping = self.map.as_deref().map(CsvMapping::parse).transpose()?;
        Ok(Format::for_path(path, mapping.as_ref()))
    }
}

#[derive(Args, Debug)]
pub struct QaArgs {
    file: PathBuf,
    #[command(flatten)]
    input: InputArgs,
    /// An evaluation file to check for contamination (JSONL or CSV with the default mapping).
    #[arg(long)]
    against: Option<PathBuf>,
    /// Jaccard similarity for near-duplicates and near-same prompts.
    #[arg(long, default_value_t = 0.7)]
    threshold: f64,
    /// Words per shingle.
    #[arg(long, default_value_t = 3)]
    shingle: usize,
    /// Largest cluster of near-identical prompts, or of short prompts of one template (the
    /// same once a slot of a few words is masked), that is not over-represented; `--fix`
    /// keeps this many of each, one of each answer in turn.
    #[arg(long, default_value_t = 5)]
    cap: usize,
    /// Words per n-gram for contamination.
    #[arg(long, default_value_t = 8)]
    ngram: usize,
    /// Share of n-grams in common that counts as contamination.
    #[arg(long, default_value_t = 0.5)]
    contamination: f64,
    /// Write a cleaned copy here (and the removal log to OUT.removed.jsonl); the input is
    /// never changed.
    #[arg(long)]
    fix: Option<PathBuf>,
    /// Also flag examples whose answer this model (a cached name such as `smollm2`, or a
    /// GGUF file: the base model to be fine-tuned) finds very likely: likely generated by a
    /// model like it, or memorized, rather than written for the task.
    #[arg(long, value_name = "MODEL")]
    memorization: Option<String>,
    /// Mean log-probability per answer token above which an answer is flagged.
    #[arg(long, default_value_t = super::qa_memorization::DEFAULT_THRESHOLD, allow_negative_numbers = true)]
    memorization_threshold: f64,
    /// Examples scored for memorization at most, spread evenly over the file.
    #[arg(long, default_value_t = 500)]
    memorization_sample: usize,
    /// One JSON object: exact_duplicates, near_duplicates, contradictions, contamination and
    /// overrepresented (each a list of {"lines": [...]} groups), coverage (edge-case counts
    /// and warnings) and, with --memorization, memorization.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum By {
    Random,
    Label,
    Group,
}

#[derive(Args, Debug)]
pub struct SplitArgs {
    file: PathBuf,
    #[command(flatten)]
    input: InputArgs,
    #[arg(long, short)]
    out: PathBuf,
    /// random, label (stratified) or group (no group in two splits). An annotated documents
    /// file (documents.jsonl: text, spans, labels) is always split by document, with
    /// near-duplicate documents (Jaccard >= 0.5 on 5-word shingles) kept in one split.
    #[arg(long, value_enum, default_value = "random")]
    by: By,
    /// train,valid[,test] as ratios (0.8,0.1,0.1) or counts (400,50,50).
    #[arg(long, default_value = "0.8,0.1,0.1", conflicts_with = "pilot")]
    sizes: String,
    /// The pilot split: 40 training and 10 validation examples out of 50.
    #[arg(long)]
    pilot: bool,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// A progress bar over bytes, one pass at a time; hidden when stderr is not a terminal.
struct Bar(ProgressBar);

impl Bar {
    fn new() -> Self {
        Self(ProgressBar::hidden())
    }
}

impl Progress for Bar {
    fn start(&self, phase: &str, total: u64) {
        self.0
            .set_draw_target(indicatif::ProgressDrawTarget::stderr());
        self.0.reset();
        self.0.set_length(total);
        self.0.set_position(0);
        self.0.set_style(
            ProgressStyle::with_template("{msg:>16} [{bar:40}] {bytes}/{total_bytes} ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        self.0.set_message(phase.to_string());
    }
    fn set(&self, pos: u64) {
        self.0.set_position(pos);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

pub fn run(cmd: DataCmd) -> Result<()> {
    match cmd {
        DataCmd::FromFeedback(a) => super::feedback::run(a),
        DataCmd::Select(a) => super::select::run(a),
        DataCmd::Draft(a) => super::draft::run(a),
        DataCmd::Import(ImportCmd::Contractnli { file, out }) => {
            let ds = hone_data::contractnli::read(&file)?;
            let imp = hone_data::contractnli::import(&ds, &file)?;
            hone_data::contractnli::write_imported(&imp, &out)?;
            let evidence = imp
                .examples
                .iter()
                .filter(|e| e.label.as_deref() != Some("none"))
                .count();
            println!(
                "{} documents -> {} span examples ({} with evidence) in {}, evaluation file {}",
                imp.documents.len(),
                imp.examples.len(),
                evidence,
                out.join("spans.jsonl").display(),
                out.join("documents.jsonl").display()
            );
            Ok(())
        }
        DataCmd::Validate {
            file,
            input,
            max_seq_len,
            model,
            json,
        } => {
            let format = input.format(&file)?;
            let counter = match max_seq_len {
                Some(_) => Some(
                    TokenCounter::load(&model)
                        .with_context(|| format!("loading the tokenizer of {model}"))?,
                ),
                None => None,
            };
            let opts = hone_data::validate::ValidateOptions {
                max_seq_len: max_seq_len.zip(counter.as_ref()),
            };
            let rep = hone_data::validate::validate_file(&file, &format, &opts, &Bar::new())?;
            if json {
                println!("{}", serde_json::to_string(&rep)?);
            } else {
                for p in &rep.problems {
                    println!("{}:{}: {}", file.display(), p.line, p.problem);
                }
                if rep.problem_count > rep.problems.len() {
                    println!(
                        "... and {} more problems",
                        rep.problem_count - rep.problems.len()
                    );
                }
                eprintln!(
                    "{} records, {} valid, {} problems",
                    rep.records, rep.valid, rep.problem_count
                );
            }
            if !rep.is_ok() {
                std::process::exit(1);
            }
            Ok(())
        }
        DataCmd::Stats {
            file,
            input,
            model,
            words,
            svg,
            json,
        } => {
            let format = input.format(&file)?;
            let counter = if words {
                None
            } else {
                match TokenCounter::load(&model) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        eprintln!("note: lengths in words ({e})");
                        None
                    }
                }
            };
            let s = hone_data::stats::compute(&file, &format, counter.as_ref(), &Bar::new())?;
            if let Some(p) = svg {
                hone_data::atomic::write_file(&p, s.histogram_svg().as_bytes())?;
                eprintln!("histogram: {}", p.display());
            }
            if json {
                println!("{}", serde_json::to_string(&s)?);
            } else {
                print!("{}", s.to_text());
            }
            Ok(())
        }
        DataCmd::Qa(a) => {
            let format = a.input.format(&a.file)?;
            let against_format = a.against.as_ref().map(|p| Format::for_path(p, None));
            let opts = QaOptions {
                threshold: a.threshold,
                shingle: a.shingle,
                cap: a.cap,
                ngram: a.ngram,
                contamination: a.contamination,
                ..Default::default()
            };
            if a.fix.as_deref() == Some(a.file.as_path()) {
                bail!("--fix must name a new file; the input is never edited");
            }
            if !a.memorization_threshold.is_finite() || a.memorization_threshold > 0.0 {
                bail!(
                    "--memorization-threshold is a mean log-probability per token, a number of \
                     at most 0, got {}",
                    a.memorization_threshold
                );
            }
            if a.memorization_sample == 0 {
                bail!("--memorization-sample must be at least 1");
            }
            let against = a.against.as_deref().zip(against_format.as_ref());
            let mut rep = hone_data::qa::run(
                &a.file,
                &format,
                against,
                &opts,
                a.fix.as_deref(),
                &Bar::new(),
            )?;
            if let Some(model) = &a.memorization {
                rep.memorization = Some(super::qa_memorization::check(
                    &a.file,
                    &format,
                    rep.records,
                    model,
                    a.memorization_threshold,
                    a.memorization_sample,
                )?);
            }
            if a.json {
                println!("{}", serde_json::to_string(&rep.to_json())?);
            } else {
                print!("{}", rep.to_text(&opts));
            }
            if let Some(out) = &a.fix {
                eprintln!(
                    "cleaned copy: {} ({} lines removed, log in {}.removed.jsonl)",
                    out.display(),
                    rep.removed.len(),
                    out.display()
                );
            }
            Ok(())
        }
        DataCmd::Split(a) => {
            let sizes = if a.pilot {
                Sizes::pilot()
            } else {
                Sizes::parse(&a.sizes)?
            };
            if a.input.map.is_none() && hone_data::split::is_documents_file(&a.file)? {
                if !matches!(a.by, By::Random) {
                    eprintln!(
                        "note: --by is ignored for a documents file: it is split by document, \
                         near-duplicate documents kept together"
                    );
                }
                let rep = hone_data::split::split_documents(
                    &a.file,
                    &a.out,
                    &sizes,
                    a.seed,
                    hone_data::split::DOC_NEAR_DUP,
                )?;
                let pairs = rep.near_duplicate_pairs.len();
                println!(
                    "{} documents in {} groups ({pairs} near-duplicate pair{} kept together): train {}, valid {}, test {}{}",
                    rep.documents,
                    rep.groups,
                    if pairs == 1 { "" } else { "s" },
                    rep.counts[0],
                    rep.counts[1],
                    rep.counts[2],
                    if rep.left_out > 0 {
                        format!(", {} left out", rep.left_out)
                    } else {
                        String::new()
                    }
                );
                for p in &rep.near_duplicate_pairs {
                    println!(
                        "  kept together: {} and {} (Jaccard {:.2})",
                        p.ids[0], p.ids[1], p.jaccard
                    );
                }
                for f in rep.files {
                    println!("  {f}");
                }
                return Ok(());
            }
            let format = a.input.format(&a.file)?;
            let strategy = match a.by {
                By::Random => Strategy::Random,
                By::Label => Strategy::Stratified,
                By::Group => Strategy::Grouped,
            };
            let rep = hone_data::split::split_file(
                &a.file,
                &format,
                &a.out,
                strategy,
                &sizes,
                a.seed,
                &Bar::new(),
            )?;
            println!(
                "{} records: train {}, valid {}, test {}{}",
                rep.records,
                rep.counts[0],
                rep.counts[1],
                rep.counts[2],
                if rep.left_out > 0 {
                    format!(", {} left out", rep.left_out)
                } else {
                    String::new()
                }
            );
            for f in rep.files {
                println!("  {f}");
            }
            Ok(())
        }
        DataCmd::Convert { file, input, out } => {
            let format = input.format(&file)?;
            let mut exs = Vec::new();
            for rec in hone_data::Records::open(&file, &format)? {
                exs.push(rec?.into_example(&file)?);
            }
            let n = if out
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
            {
                hone_data::csv::write_examples(&out, &exs)?
            } else {
                hone_data::jsonl::write_examples(&out, &exs)?
            };
            println!("{n} examples -> {}", out.display());
            Ok(())
        }
        DataCmd::Synth(SynthCmd::Clauses {
            out,
            examples,
            seed,
        }) => {
            if examples == 0 {
                bail!("--examples must be at least 1");
            }
            let ex = hone_data::synth_clauses::generate(examples, seed);
            let n = hone_data::jsonl::write_examples(&out, &ex)?;
            println!(
                "{n} clause-topic examples (seed {seed}) -> {}; try `hone pilot {}`",
                out.display(),
                out.display()
            );
            Ok(())
        }
        DataCmd::Synth(SynthCmd::Nda {
            out,
            docs,
            seed,
            out_of_scope,
        }) => {
            if docs == 0 {
                bail!("--docs must be at least 1");
            }
            let mut ds = hone_data::synth::generate(docs, seed);
            ds.documents
                .extend(hone_data::synth_out_of_scope::documents(
                    out_of_scope,
                    seed,
                    docs,
                ));
            let imp = hone_data::synth::write(&ds, &out)?;
            println!(
                "{} synthetic NDAs and {out_of_scope} out-of-scope documents (seed {seed}) -> {} (ContractNLI format), {} span examples in {}, evaluation file {}",
                imp.documents.len() - out_of_scope,
                out.join("nda.json").display(),
                imp.examples.len(),
                out.join("spans.jsonl").display(),
                out.join("documents.jsonl").display()
            );
            Ok(())
        }
    }
}
