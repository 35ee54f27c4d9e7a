//! The span splitter: its invariants and rules on our own small texts, and agreement with
//! ContractNLI's gold spans on the real train/dev file (read from ../shared, never copied here).

use std::path::PathBuf;
use std::time::Instant;

use hone_data::contractnli;
use hone_data::spans::{self, best_iou, span_text, span_texts, CharOffsets, Span, MAX_SPAN_CHARS};

/// The span texts of `text`.
fn texts(text: &str) -> Vec<&str> {
    span_texts(text, &spans::split(text))
}

/// What every split must satisfy: spans in order, apart, non-empty, trimmed, within one line,
/// at most MAX_SPAN_CHARS long, covering every character that is not white space; and the
/// byte ranges naming the same text.
fn check_invariants(text: &str) -> Vec<Span> {
    let got = spans::split(text);
    let bytes = spans::split_bytes(text);
    let offsets = CharOffsets::new(text);
    assert_eq!(got.len(), bytes.len());
    let mut covered = 0; // characters inside spans
    let mut prev_end = 0;
    for (s, b) in got.iter().zip(&bytes) {
        assert!(s.start < s.end, "empty span {s:?}");
        assert!(
            s.start >= prev_end,
            "spans overlap or go backwards: {s:?} after {prev_end}"
        );
        assert!(s.len() <= MAX_SPAN_CHARS, "span of {} characters", s.len());
        prev_end = s.end;
        let t = &text[b.clone()];
        assert_eq!(t, offsets.slice(s), "byte and character offsets disagree");
        assert_eq!(t, t.trim(), "span not trimmed: {t:?}");
        assert!(!t.contains(['\n', '\r']), "span crosses a line: {t:?}");
        assert_eq!(offsets.byte_range(s), b.clone());
        assert_eq!(offsets.to_char(b.start), s.start);
        covered += t.chars().filter(|c| !c.is_whitespace()).count();
    }
    assert!(prev_end <= offsets.char_len());
    let visible = text.chars().filter(|c| !c.is_whitespace()).count();
    assert_eq!(covered, visible, "some text is in no span");
    got
}

#[test]
fn empty_and_blank_texts_have_no_spans() {
    assert!(check_invariants("").is_empty());
    assert!(check_invariants(" \n\t\r\n \u{a0}\u{2028} ").is_empty());
    assert_eq!(texts("  x  "), ["x"]);
}

#[test]
fn lines_and_sentences() {
    let text = "MUTUAL CONFIDENTIALITY AGREEMENT\n\
                This Agreement is made between Alpha and Beta. It starts today!  Does it end?\n\
                Signed by the parties";
    check_invariants(text);
    assert_eq!(
        texts(text),
        [
            "MUTUAL CONFIDENTIALITY AGREEMENT",
            "This Agreement is made between Alpha and Beta.",
            "It starts today!",
            "Does it end?",
            "Signed by the parties",
        ]
    );
    // Windows line ends, a sentence continued in lower case, quotes after the period.
    let text =
        "First line\r\nThe term is defined, i.e. not open. ok then. He wrote \"Stop.\" Then left.";
    check_invariants(text);
    assert_eq!(
        texts(text),
        [
            "First line",
            "The term is defined, i.e. not open. ok then.",
            "He wrote \"Stop.\"",
            "Then left.",
        ]
    );
}

#[test]
fn numbered_clauses_keep_their_numbers() {
    let text = "1. Definitions. The Recipient shall keep the information secret.\n\
                2.3. Term. This Agreement lasts two years.\n\
                a. first item;\n\
                (b) second item; and\n\
                iv. fourth item.\n\
                Section 4. Notices. Notices are in writing.";
    check_invariants(text);
    assert_eq!(
        texts(text),
        [
            "1. Definitions.",
            "The Recipient shall keep the information secret.",
            "2.3. Term.",
            "This Agreement lasts two years.",
            "a. first item;",
            "(b) second item; and",
            "iv. fourth item.",
            "Section 4. Notices.",
            "Notices are in writing.",
        ]
    );
    // A bare clause number before a sentence opener stands alone, as in ContractNLI; before a
    // heading or a defined term it stays with its clause.
    let text = "2.1 The Recipient shall not copy it.\n2.2 Confidential Information means data.\n7 Governing law";
    assert_eq!(
        texts(text),
        [
            "2.1",
            "The Recipient shall not copy it.",
            "2.2 Confidential Information means data.",
            "7 Governing law",
        ]
    );
    // A clause number after a sentence starts the next span and is not cut off from it.
    assert_eq!(
        texts("It is agreed. 4. Return of Information. All copies go back."),
        [
            "It is agreed.",
            "4. Return of Information.",
            "All copies go back."
        ]
    );
}

#[test]
fn inline_list_items() {
    let text = "Information does not include information that: (a) is public; (b) was known, \
                or (iii) is developed (C) independently within thirty (30) days (see (2) below).";
    check_invariants(text);
    assert_eq!(
        texts(text),
        [
            "Information does not include information that:",
            "(a) is public;",
            "(b) was known, or",
            "(iii) is developed",
            "(C) independently within thirty (30) days (see",
            "(2) below).",
        ]
    );
    // Not markers: acronyms, numbers glued to a word, phone numbers after a code.
    assert_eq!(
        texts("Critical Information (CII) under Section 4(b)(2) and +44 (0) 20 7946."),
        ["Critical Information (CII) under Section 4(b)(2) and +44 (0) 20 7946."]
    );
}

#[test]
fn abbreviations_decimals_and_references() {
    let text = "Acme Inc. and Foo Co. Ltd. send it by U.S. Mail, e.g. First Class, to Dr. Smith \
                at No. 5 Main St. within 1.5 days under Section 2.1 and 45 C.F.R. Part 160. \
                J. R. Doe signs. See Exhibit C. The rest follows per Sec. 3 of the Act.";
    check_invariants(text);
    assert_eq!(
        texts(text),
        [
            "Acme Inc. and Foo Co. Ltd. send it by U.S. Mail, e.g. First Class, to Dr. Smith \
             at No. 5 Main St. within 1.5 days under Section 2.1 and 45 C.F.R. Part 160.",
            "J. R. Doe signs.",
            "See Exhibit C.",
            "The rest follows per Sec. 3 of the Act.",
        ]
    );
    // Company suffixes and "etc." end a sentence before a capital, not before a bracket.
    assert_eq!(
        texts("Send it to Acme, Inc. (\u{201c}Acme\u{201d}) or Beta Ltd. The list goes on, etc. 5 more."),
        [
            "Send it to Acme, Inc. (\u{201c}Acme\u{201d}) or Beta Ltd.",
            "The list goes on, etc.",
            "5 more."
        ]
    );
    // Dot leaders of a table of contents end no sentence.
    assert_eq!(
        texts("Name . . . . . . . . Date . . . . ."),
        ["Name . . . . . . . . Date . . . . ."]
    );
}

#[test]
fn blanks_to_fill_in() {
    let text = "This Agreement is between ______________ (the \"Recipient\") and Acme.\n\
                Name:______________ Title: __";
    check_invariants(text);
    assert_eq!(
        texts(text),
        [
            "This Agreement is between",
            "______________",
            "(the \"Recipient\") and Acme.",
            "Name:______________",
            "Title: __",
        ]
    );
}

#[test]
fn offsets_are_characters_not_bytes() {
    let text = "Präambel – „Vertraulich“.\nDie Empfängerin hält alles geheim. Ähnliches gilt für Straße № 5.";
    let got = check_invariants(text);
    assert_eq!(
        texts(text),
        [
            "Präambel – „Vertraulich“.",
            "Die Empfängerin hält alles geheim.",
            "Ähnliches gilt für Straße № 5.",
        ]
    );
    let chars: Vec<char> = text.chars().collect();
    for s in &got {
        let by_chars: String = chars[s.start..s.end].iter().collect();
        assert_eq!(span_text(text, s), by_chars);
    }
    assert_eq!(got[0], Span::new(0, 25));
    assert_eq!(got[1], Span::new(26, 60));
    // Conversions, including past the end and inside a character.
    let offsets = CharOffsets::new(text);
    assert_eq!(offsets.char_len(), chars.len());
    assert_eq!(offsets.to_byte(chars.len() + 10), text.len());
    assert_eq!(offsets.to_char(2), 2);
    assert_eq!(offsets.to_char(3), 3); // inside 'ä', which starts before byte 3
    assert_eq!(span_text(text, &Span::new(1000, 2000)), "");
    assert_eq!(span_text(text, &Span::new(5, 2)), "");
    assert_eq!(offsets.slice(&Span::new(1000, 2000)), "");
    assert_eq!(
        offsets.trim(&Span::new(25, 30)),
        Span::new(26, 29),
        "trim skips the line break and the space"
    );
}

#[test]
fn span_measures() {
    let a = Span::new(0, 10);
    assert_eq!(a.iou(&a), 1.0);
    assert_eq!(a.iou(&Span::new(5, 15)), 5.0 / 15.0);
    assert_eq!(a.iou(&Span::new(10, 20)), 0.0);
    assert_eq!(Span::new(3, 3).iou(&Span::new(3, 3)), 0.0);
    assert_eq!(Span::new(5, 2).len(), 0);
    let sorted = [Span::new(0, 4), Span::new(5, 9), Span::new(10, 30)];
    assert_eq!(best_iou(&Span::new(5, 9), &sorted), 1.0);
    assert_eq!(best_iou(&Span::new(6, 12), &sorted), 3.0 / 7.0);
    assert_eq!(best_iou(&Span::new(40, 50), &sorted), 0.0);
    assert_eq!(best_iou(&Span::new(0, 4), &[]), 0.0);
}

#[test]
fn long_texts_are_linear_and_capped() {
    // 5 MB of words with no punctuation and no line break.
    let text = "lorem ipsum dolor sit amet ".repeat(5 << 20 >> 5);
    let t0 = Instant::now();
    let got = check_invariants(&text);
    assert!(got.len() >= text.len() / (MAX_SPAN_CHARS + 1));
    // 5 MB without any white space: cut anywhere.
    let blob = "é".repeat(5 << 19);
    let got = check_invariants(&blob);
    assert_eq!(got.len(), (5 << 19) / MAX_SPAN_CHARS + 1);
    // 5 MB of one-character words and sentences: many spans.
    let dots = "A. b. C! (d) ____________ ".repeat(200_000);
    check_invariants(&dots);
    // Debug builds are slow, but a quadratic pass over 5 MB would take hours, not seconds.
    assert!(t0.elapsed().as_secs() < 120, "took {:?}", t0.elapsed());
}

#[test]
fn garbage_never_panics() {
    // Lossy-decoded pseudo-random bytes, and random strings over the characters the rules
    // look at.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let alphabet: Vec<char> = "aZ1.?!()[]\"“”’'_ \n\r\t\u{a0}é€🙂-/:;§•ivxIVX0"
        .chars()
        .collect();
    for round in 0..300 {
        let len = (next() % 400) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        check_invariants(&String::from_utf8_lossy(&bytes));
        let s: String = (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
            .collect();
        let got = check_invariants(&s);
        if round % 50 == 0 {
            for sp in &got {
                assert_eq!(span_text(&s, sp), CharOffsets::new(&s).slice(sp));
            }
        }
    }
}

fn data_file() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("HONE_CONTRACTNLI").map(PathBuf::from),
        Some(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/data/contractnli/train_dev.json"),
        ),
        Some(PathBuf::from(
            "/work/shared/data/contractnli/train_dev.json",
        )),
    ];
    // An explicitly named file is the only one tried.
    let tried: Vec<PathBuf> = if let Some(p) = candidates[0].clone() {
        vec![p]
    } else {
        candidates.into_iter().flatten().collect()
    };
    let found = tried.iter().find(|p| p.is_file()).cloned();
    if found.is_none() {
        println!("SKIP: ContractNLI data not found (tried {tried:?}; set HONE_CONTRACTNLI)");
    }
    found
}

/// Match rates against ContractNLI's gold spans.
///
/// Gold spans are trimmed of white space first (the file's often end in a space); the 79
/// that are only white space are left out. A gold span is *matched* when some predicted span
/// has character IoU ≥ 0.5 with it, and *exact* when a predicted span has the same
/// boundaries. Evidence spans are those named by some hypothesis in
/// `annotation_sets[0].annotations[*].spans` (each counted once per document).
#[test]
fn matches_contractnli_gold_spans() {
    let Some(path) = data_file() else { return };
    let ds = contractnli::read(&path).unwrap();
    assert!(!ds.documents.is_empty());
    #[derive(Default)]
    struct Rate {
        n: usize,
        matched: usize,
        exact: usize,
    }
    impl Rate {
        fn add(&mut self, iou: f64, exact: bool) {
            self.n += 1;
            self.matched += usize::from(iou >= 0.5);
            self.exact += usize::from(exact);
        }
        fn iou(&self) -> f64 {
            self.matched as f64 / self.n as f64
        }
        fn exact(&self) -> f64 {
            self.exact as f64 / self.n as f64
        }
    }
    let (mut evidence, mut all) = (Rate::default(), Rate::default());
    let (mut blank, mut predicted) = (0, 0);
    let t0 = Instant::now();
    for doc in &ds.documents {
        let pred = check_invariants(&doc.text);
        predicted += pred.len();
        let offsets = CharOffsets::new(&doc.text);
        let mut is_evidence = vec![false; doc.spans.len()];
        if let Some(set) = doc.annotation_sets.first() {
            for ann in set.annotations.values() {
                for &i in &ann.spans {
                    if let Some(e) = is_evidence.get_mut(i) {
                        *e = true;
                    }
                }
            }
        }
        for (i, &g) in doc.spans.iter().enumerate() {
            let gold = offsets.trim(&Span::from(g));
            if gold.is_empty() {
                blank += 1;
                continue;
            }
            let iou = best_iou(&gold, &pred);
            let exact = pred.binary_search(&gold).is_ok();
            all.add(iou, exact);
            if is_evidence[i] {
                evidence.add(iou, exact);
            }
        }
    }
    println!(
        "ContractNLI train/dev, {} documents ({blank} blank gold spans left out), split in {:?}:\n  \
         evidence spans: {:.2}% matched (IoU >= 0.5), {:.2}% exact boundaries, n = {}\n  \
         all gold spans: {:.2}% matched (IoU >= 0.5), {:.2}% exact boundaries, n = {}\n  \
         predicted spans: {predicted}",
        ds.documents.len(),
        t0.elapsed(),
        100.0 * evidence.iou(),
        100.0 * evidence.exact(),
        evidence.n,
        100.0 * all.iou(),
        100.0 * all.exact(),
        all.n,
    );
    assert!(evidence.n > 0);
    assert!(
        evidence.iou() >= 0.90,
        "only {:.2}% of the gold evidence spans matched",
        100.0 * evidence.iou()
    );
}
