//! `hone data qa` on a generated fixture with planted problems: every planted problem is found
//! in its category and no clean line is flagged.

use std::collections::HashSet;
use std::path::Path;

use hone_data::hash::Rng;
use hone_data::qa::{self, QaOptions};
use hone_data::{Format, NoProgress};
use serde_json::json;

fn word(rng: &mut Rng) -> String {
    const SYL: &[&str] = &[
        "ka", "lo", "mi", "ter", "van", "su", "pre", "dor", "el", "zu", "ri", "bon", "ta", "ges",
        "nu", "fa", "qui", "ma", "sol", "den",
    ];
    (0..2 + rng.below(2)).map(|_| *rng.pick(SYL)).collect()
}

fn words(rng: &mut Rng, n: usize) -> Vec<String> {
    (0..n).map(|_| word(rng)).collect()
}

fn line(instruction: &str, input: &str, output: &str) -> String {
    json!({"instruction": instruction, "input": input, "output": output}).to_string()
}

const INSTR: &str = "Answer the customer's message politely and accurately.";

struct Fixture {
    lines: Vec<String>,
    against: Vec<String>,
    exact: Vec<Vec<usize>>,
    near: Vec<Vec<usize>>,
    contradictions: Vec<Vec<usize>>,
    leaked: Vec<(usize, usize)>,
    template: Vec<usize>,
}

fn fixture() -> Fixture {
    let mut rng = Rng::new(2024);
    let mut lines: Vec<String> = Vec::new();
    let mut inputs: Vec<Vec<String>> = Vec::new();
    let mut outputs: Vec<String> = Vec::new();
    for _ in 0..60 {
        let i = words(&mut rng, 40);
        let o = words(&mut rng, 10).join(" ");
        lines.push(line(INSTR, &i.join(" "), &o));
        inputs.push(i);
        outputs.push(o);
    }
    let n = |lines: &Vec<String>| lines.len(); // 1-based number of the last line
    let mut f = Fixture {
        lines,
        against: vec![],
        exact: vec![],
        near: vec![],
        contradictions: vec![],
        leaked: vec![],
        template: vec![],
    };

    // Exact duplicates: line 3 twice more, line 10 once more.
    for (src, copies) in [(3usize, 2usize), (10, 1)] {
        let mut g = vec![src];
        for _ in 0..copies {
            f.lines.push(f.lines[src - 1].clone());
            g.push(n(&f.lines));
        }
        f.exact.push(g);
    }
    // Paraphrased near-duplicates: one word changed, case and punctuation changed.
    for src in [20usize, 30] {
        let mut i = inputs[src - 1].clone();
        i[17] = word(&mut rng);
        let text = format!("{}!", i.join(" ").to_uppercase());
        f.lines.push(line(INSTR, &text, &outputs[src - 1]));
        f.near.push(vec![src, n(&f.lines)]);
    }
    // Contradictions: the same prompt (line 40) and a near-same prompt (line 45) with other answers.
    f.lines.push(line(
        INSTR,
        &inputs[39].join(" "),
        &words(&mut rng, 10).join(" "),
    ));
    f.contradictions.push(vec![40, n(&f.lines)]);
    let mut i = inputs[44].clone();
    i[5] = word(&mut rng);
    f.lines
        .push(line(INSTR, &i.join(" "), &words(&mut rng, 10).join(" ")));
    f.contradictions.push(vec![45, n(&f.lines)]);

    // The evaluation file: 25 prompts, two of which leak into training (one verbatim, one with
    // two words changed).
    for _ in 0..25 {
        f.against.push(line(
            INSTR,
            &words(&mut rng, 40).join(" "),
            &words(&mut rng, 8).join(" "),
        ));
    }
    let eval_input = |k: usize, f: &Fixture| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(&f.against[k - 1]).unwrap();
        v["input"]
            .as_str()
            .unwrap()
            .split(' ')
            .map(String::from)
            .collect()
    };
    let e = eval_input(7, &f);
    f.lines
        .push(line(INSTR, &e.join(" "), &words(&mut rng, 10).join(" ")));
    f.leaked.push((n(&f.lines), 7));
    let mut e = eval_input(19, &f);
    e[3] = word(&mut rng);
    e[30] = word(&mut rng);
    f.lines
        .push(line(INSTR, &e.join(" "), &words(&mut rng, 10).join(" ")));
    f.leaked.push((n(&f.lines), 19));

    // An over-represented template: 8 prompts differing in one slot.
    let base = words(&mut rng, 30);
    let answer = words(&mut rng, 12);
    for _ in 0..8 {
        let mut i = base.clone();
        i[12] = word(&mut rng);
        let mut o = answer.clone();
        o[4] = i[12].clone();
        f.lines.push(line(INSTR, &i.join(" "), &o.join(" ")));
        f.template.push(n(&f.lines));
    }
    // Shuffle nothing: planted lines come after clean ones, which keeps line numbers readable.
    f
}

fn write(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

fn contains(groups: &[qa::Group], want: &[usize]) -> bool {
    groups
        .iter()
        .any(|g| want.iter().all(|l| g.lines.contains(l)))
}

#[test]
fn finds_every_planted_problem_and_flags_no_clean_line() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let (train, test) = (
        dir.path().join("train.jsonl"),
        dir.path().join("test.jsonl"),
    );
    write(&train, &f.lines);
    write(&test, &f.against);
    let opts = QaOptions::default();
    let out = dir.path().join("clean.jsonl");
    let rep = qa::run(
        &train,
        &Format::Jsonl,
        Some((&test, &Format::Jsonl)),
        &opts,
        Some(&out),
        &NoProgress,
    )
    .unwrap();
    let fd = &rep.findings;

    assert_eq!(fd.exact_duplicates.len(), 2, "{:?}", fd.exact_duplicates);
    for g in &f.exact {
        assert!(
            fd.exact_duplicates.iter().any(|x| &x.lines == g),
            "exact {g:?}: {:?}",
            fd.exact_duplicates
        );
    }
    for g in &f.near {
        assert!(
            contains(&fd.near_duplicates, g),
            "near {g:?}: {:?}",
            fd.near_duplicates
        );
    }
    for g in &f.contradictions {
        assert!(
            fd.contradictions.iter().any(|x| &x.lines == g),
            "contradiction {g:?}: {:?}",
            fd.contradictions
        );
    }
    assert_eq!(fd.contamination.len(), 2, "{:?}", fd.contamination);
    for &(l, e) in &f.leaked {
        assert!(
            fd.contamination
                .iter()
                .any(|g| g.lines == [l] && g.against == [e]),
            "leak {l}->{e}: {:?}",
            fd.contamination
        );
    }
    assert_eq!(fd.overrepresented.len(), 1, "{:?}", fd.overrepresented);
    assert_eq!(fd.overrepresented[0].lines, f.template);

    // Nothing else: every flagged line belongs to a planted problem.
    let mut planted: HashSet<usize> = HashSet::new();
    for g in f.exact.iter().chain(&f.near).chain(&f.contradictions) {
        planted.extend(g);
    }
    planted.extend(f.leaked.iter().map(|p| p.0));
    planted.extend(&f.template);
    let flagged = fd.flagged_lines();
    let clean_flagged: Vec<&usize> = flagged.difference(&planted).collect();
    assert!(
        clean_flagged.is_empty(),
        "clean lines flagged: {clean_flagged:?}"
    );

    // --fix: the input is untouched; the copy drops exactly the logged lines.
    assert_eq!(
        std::fs::read_to_string(&train).unwrap(),
        f.lines.join("\n") + "\n"
    );
    let kept = std::fs::read_to_string(&out).unwrap();
    let log = std::fs::read_to_string(dir.path().join("clean.jsonl.removed.jsonl")).unwrap();
    let removed: Vec<usize> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["line"]
                .as_u64()
                .unwrap() as usize
        })
        .collect();
    assert_eq!(kept.lines().count() + removed.len(), f.lines.len());
    assert_eq!(removed.len(), 14);
    // Duplicates lose their copies, contradictions and leaks go entirely, the template keeps 5.
    for l in [61, 62, 63, 64, 65, 40, 66, 45, 67, 68, 69, 75, 76, 77] {
        assert!(removed.contains(&l), "line {l} not removed: {removed:?}");
    }
    for l in [3, 10, 20, 30] {
        assert!(!removed.contains(&l), "first copy {l} removed");
    }
    assert_eq!(
        f.template.iter().filter(|l| !removed.contains(l)).count(),
        5
    );
    for (i, l) in f.lines.iter().enumerate() {
        assert_eq!(
            kept.contains(l.as_str()),
            !removed.contains(&(i + 1)) || f.lines[..i].contains(l) || f.lines[i + 1..].contains(l)
        );
    }

    // --json has exactly the five keys, groups as 1-based line lists.
    let v = serde_json::to_value(fd).unwrap();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(|s| s.as_str()).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "contamination",
            "contradictions",
            "exact_duplicates",
            "near_duplicates",
            "overrepresented"
        ]
    );
    assert_eq!(v["exact_duplicates"][0]["lines"], json!([3, 61, 62]));
}

/// A small hand-made chat file as a new user writes one: a template repeated seven times with
/// one slot changed (same label), beside prompts that only share words.
fn chat(user: &str, answer: &str) -> String {
    json!({"messages": [{"role": "user", "content": user},
                        {"role": "assistant", "content": answer}]})
    .to_string()
}

/// `hone data qa` at default settings on these lines, without `--fix`.
fn qa_default(lines: &[String]) -> qa::QaReport {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.jsonl");
    write(&path, lines);
    qa::run(
        &path,
        &Format::Jsonl,
        None,
        &QaOptions::default(),
        None,
        &NoProgress,
    )
    .unwrap()
}

#[test]
fn a_template_with_one_slot_changed_is_over_represented_and_shown() {
    let mut lines = Vec::new();
    let slots = [
        "auditors",
        "lenders",
        "insurers",
        "advisers",
        "affiliates",
        "contractors",
        "regulators",
    ];
    for s in slots {
        lines.push(chat(
            &format!("Classify: Disclosure to the {s} is permitted."),
            "permitted-disclosure",
        ));
    }
    for (q, a) in [
        (
            "Classify: The Receiving Party shall return all materials on request.",
            "return",
        ),
        (
            "Classify: This Agreement is governed by the laws of Delaware.",
            "governing-law",
        ),
        (
            "Classify: Either party may terminate on thirty days notice.",
            "termination",
        ),
        (
            "Classify: Confidential Information excludes public information.",
            "exclusions",
        ),
        (
            "Extract the term: The obligations survive for five years.",
            "5 years",
        ),
        (
            "Classify: Disclosure is permitted when a court orders it.",
            "compelled",
        ),
    ] {
        lines.push(chat(q, a));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.jsonl");
    write(&path, &lines);
    let out = dir.path().join("fixed.jsonl");
    let opts = QaOptions::default();
    let rep = qa::run(&path, &Format::Jsonl, None, &opts, Some(&out), &NoProgress).unwrap();
    let o = &rep.findings.overrepresented;
    assert_eq!(o.len(), 1, "{o:?}");
    assert_eq!(o[0].lines, (1..=7).collect::<Vec<_>>());
    assert_eq!(
        o[0].template.as_deref(),
        Some("Classify: Disclosure to the ___ is permitted.")
    );
    assert_eq!(
        rep.findings.flagged_lines().len(),
        7,
        "only the template's lines: {:?}",
        rep.findings
    );
    let text = rep.to_text(&opts);
    assert!(
        text.contains("template: \"Classify: Disclosure to the ___ is permitted.\""),
        "{text}"
    );
    let v = serde_json::to_value(&rep.findings).unwrap();
    assert_eq!(
        v["overrepresented"][0]["template"],
        "Classify: Disclosure to the ___ is permitted."
    );
    // --fix keeps `cap` of them.
    assert_eq!(rep.removed.len(), 7 - opts.cap);
    assert!(rep.removed.iter().all(|(l, _)| (1..=7).contains(l)));
}

#[test]
fn fix_keeps_every_answer_of_a_template() {
    // Eight prompts of one template: six answer "yes", the last two "no". Keeping the first
    // five in file order would drop every "no".
    let mut lines = Vec::new();
    for (k, s) in [
        "red", "blue", "green", "black", "white", "grey", "pink", "brown",
    ]
    .iter()
    .enumerate()
    {
        let a = if k < 6 { "yes" } else { "no" };
        lines.push(chat(
            &format!("Is the {s} box allowed on the shelf today?"),
            a,
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.jsonl");
    write(&path, &lines);
    let out = dir.path().join("fixed.jsonl");
    let rep = qa::run(
        &path,
        &Format::Jsonl,
        None,
        &QaOptions::default(),
        Some(&out),
        &NoProgress,
    )
    .unwrap();
    let o = &rep.findings.overrepresented;
    assert_eq!(o.len(), 1, "{o:?}");
    assert_eq!(o[0].keep, vec![1, 7, 2, 8, 3]);
    let kept = std::fs::read_to_string(&out).unwrap();
    assert_eq!(kept.lines().count(), 5);
    assert_eq!(kept.matches("\"no\"").count(), 2, "{kept}");
}

#[test]
fn short_near_duplicates_made_of_one_edit_are_found() {
    let lines = vec![
        chat(
            "Classify: The Receiving Party may not reverse engineer the samples.",
            "no-reverse-engineering",
        ),
        chat(
            "Classify: The Receiving Party may not reverse-engineer the samples.",
            "no-reverse-engineering",
        ),
        chat(
            "Extract the term: This Agreement remains in force for two years.",
            "2 years",
        ),
        chat(
            "Extract the term: This Agreement shall remain in force for two (2) years.",
            "2 years",
        ),
        chat(
            "Classify: Either party may terminate on thirty days notice.",
            "termination",
        ),
        chat(
            "Classify: This Agreement is governed by the laws of Delaware.",
            "governing-law",
        ),
        // Minimal pairs whose labels are meant to differ: not near-duplicates.
        chat(
            "Classify: The Receiving Party may disclose the information to its employees.",
            "permitted",
        ),
        chat(
            "Classify: The Receiving Party may not disclose the information to its employees.",
            "prohibited",
        ),
        chat(
            "Extract the term: The obligations survive for three years.",
            "3 years",
        ),
        chat(
            "Extract the term: The obligations survive for five years.",
            "5 years",
        ),
    ];
    let rep = qa_default(&lines);
    let near = &rep.findings.near_duplicates;
    assert!(contains(near, &[1, 2]), "{near:?}");
    assert!(contains(near, &[3, 4]), "{near:?}");
    assert_eq!(
        rep.findings.flagged_lines(),
        [1, 2, 3, 4].into_iter().collect(),
        "{:?}",
        rep.findings
    );
}

#[test]
fn a_long_prompt_with_a_negation_flipped_is_not_a_contradiction() {
    let clause = "The Receiving Party may disclose Confidential Information to its employees, \
        officers, directors, agents and professional advisers who need to know it for the \
        Purpose, provided that each of them is bound by obligations of confidentiality no less \
        protective than those set out in this Agreement";
    let flipped = clause.replacen("may disclose", "may not disclose", 1);
    let changed_term = "The obligations of the Receiving Party under this Agreement survive \
        its termination or expiry and continue in force for a period of three years from the \
        date of the last disclosure of Confidential Information made by the Disclosing Party \
        to the Receiving Party under it";
    let other_term = changed_term.replacen("three", "five", 1);
    let lines = vec![
        chat(clause, "permitted"),
        chat(&flipped, "prohibited"),
        chat(changed_term, "3 years"),
        chat(&other_term, "5 years"),
        // A real contradiction beside them: the same long prompt, two answers.
        chat(clause, "prohibited"),
    ];
    let rep = qa_default(&lines);
    assert_eq!(
        rep.findings
            .contradictions
            .iter()
            .map(|g| g.lines.clone())
            .collect::<Vec<_>>(),
        vec![vec![1, 5]],
        "{:?}",
        rep.findings
    );
    let flagged = rep.findings.flagged_lines();
    for l in [2, 3, 4] {
        assert!(!flagged.contains(&l), "line {l}: {:?}", rep.findings);
    }
}

#[test]
fn near_duplicates_carry_their_similarity_to_the_first_line() {
    let lines = vec![
        chat(
            "Classify: The Receiving Party may not copy the samples.",
            "no-copying",
        ),
        chat(
            "Classify: The Receiving Party may not duplicate the samples.",
            "no-copying",
        ),
        chat(
            "Classify: the receiving party may NOT copy the samples!",
            "no-copying",
        ),
    ];
    let opts = QaOptions::default();
    let rep = qa_default(&lines);
    let g = &rep.findings.near_duplicates;
    assert_eq!(g.len(), 1, "{g:?}");
    assert_eq!(g[0].lines, vec![1, 2, 3]);
    // Normalized, line 2 is one word in eight away from line 1 (the answer included: one in
    // nine), and line 3 the same text.
    assert_eq!(g[0].similarity, vec![0.889, 1.0]);
    assert!(
        rep.to_text(&opts)
            .contains("lines 1, 2, 3  (similarity to line 1: 0.89, 1.00)"),
        "{}",
        rep.to_text(&opts)
    );
}
