//! Reading review inputs: text, Markdown, PDF, ContractNLI JSON, documents.jsonl, and every
//! kind of bad input, which must come back as an error naming the file, never a panic.

use std::path::{Path, PathBuf};
use std::time::Instant;

use hone_review::input::{
    from_text, looks_english, read_inputs, reflow_pdf_text, InputDoc, ReadOptions,
    NOT_ENGLISH_WARNING,
};
use hone_review::pdf_fixture::{one_page_pdf, pdf_with_stream};
use hone_review::Error;

const ENGLISH_NDA: &str = "This Mutual Non-Disclosure Agreement is entered into by and between \
Acme Corporation and Beta LLC. The Receiving Party shall hold and maintain the Confidential \
Information in strict confidence for the sole and exclusive benefit of the Disclosing Party. The \
Receiving Party shall not, without the prior written approval of the Disclosing Party, use for \
its own benefit, publish, copy, or otherwise disclose to others any Confidential Information.";

const GERMAN_NDA: &str = "Vertraulichkeitsvereinbarung. Der Empfänger verpflichtet sich, alle \
vertraulichen Informationen, die ihm von der offenlegenden Partei im Rahmen der \
Geschäftsbeziehung zur Verfügung gestellt werden, streng vertraulich zu behandeln und nicht an \
Dritte weiterzugeben. Die Verpflichtung gilt für einen Zeitraum von fünf Jahren nach Beendigung \
dieser Vereinbarung. Diese Vereinbarung unterliegt dem Recht der Bundesrepublik Deutschland.";

const CHINESE_NDA: &str = "保密协议。接收方同意对披露方在业务关系中提供的所有保密信息严格保密，\
不得向任何第三方披露。本协议项下的保密义务在本协议终止后五年内继续有效。保密信息包括但不限于\
技术资料、商业计划、客户名单、财务数据以及其他任何以书面或口头形式提供的信息。接收方仅可将保密\
信息用于评估双方潜在合作之目的。本协议受中华人民共和国法律管辖。因本协议引起的争议应提交北京\
仲裁委员会仲裁。";

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn read_one(path: &Path) -> InputDoc {
    let mut docs = read_inputs(path, &ReadOptions::default()).unwrap();
    assert_eq!(docs.len(), 1, "{}", path.display());
    docs.remove(0)
}

fn name_of(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// The message of the Error::Input that reading `path` gives; asserts it names the file and
/// contains `needle`.
fn input_err(path: &Path, opt: &ReadOptions, needle: &str) -> String {
    let err = read_inputs(path, opt).expect_err("bad input must be an error");
    let msg = err.to_string();
    assert!(
        matches!(err, Error::Input { .. }),
        "not an Input error: {msg}"
    );
    assert!(
        msg.contains(&name_of(path)),
        "message does not name the file: {msg}"
    );
    assert!(msg.contains(needle), "`{needle}` not in: {msg}");
    msg
}

fn slice(text: &str, [s, e]: [usize; 2]) -> String {
    text.chars().skip(s).take(e - s).collect()
}

fn texts(doc: &InputDoc) -> Vec<String> {
    doc.spans.iter().map(|&sp| slice(&doc.text, sp)).collect()
}

fn has_not_english(doc: &InputDoc) -> bool {
    doc.warnings.iter().any(|w| w == NOT_ENGLISH_WARNING)
}

#[test]
fn txt_with_crlf_gives_lf_text_and_trimmed_sentence_spans() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "acme-nda.txt",
        "\u{FEFF}NON-DISCLOSURE AGREEMENT\r\n\r\nThe Recipient shall keep the Confidential \
         Information secret.  It shall not disclose it to any third party.\r\n  2. Term\r\n",
    );
    let d = read_one(&p);
    assert_eq!(d.doc_id, "acme-nda");
    assert_eq!(d.source, p.display().to_string());
    assert!(!d.text.contains('\r') && !d.text.starts_with('\u{FEFF}'));
    assert!(d
        .text
        .starts_with("NON-DISCLOSURE AGREEMENT\n\nThe Recipient"));
    let t = texts(&d);
    assert_eq!(
        t,
        [
            "NON-DISCLOSURE AGREEMENT",
            "The Recipient shall keep the Confidential Information secret.",
            "It shall not disclose it to any third party.",
            "2. Term",
        ]
    );
    for s in &t {
        assert_eq!(s, s.trim());
    }
    assert!(d.spans.windows(2).all(|w| w[0][1] <= w[1][0]));
    // Short, but too few words to judge the language.
    assert!(d
        .warnings
        .iter()
        .any(|w| w.starts_with("very short for a contract")));
    assert!(!has_not_english(&d));
    assert!(d.read_ms >= 0.0);
}

#[test]
fn markdown_is_reviewed_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let md =
        format!("# Mutual NDA\n\n**1. Confidentiality.** {ENGLISH_NDA}\n\n- Term: two years.\n");
    let p = write(dir.path(), "mutual.md", &md);
    let d = read_one(&p);
    assert_eq!(d.doc_id, "mutual");
    assert_eq!(d.text, md);
    let t = texts(&d);
    assert_eq!(t[0], "# Mutual NDA");
    assert!(t.iter().any(|s| s.contains("Confidentiality.**")), "{t:?}");
    assert_eq!(t.last().unwrap(), "- Term: two years.");
    // The spans cover every non-blank character of the Markdown, markup included.
    let squeeze = |s: &str| s.split_whitespace().collect::<String>();
    assert_eq!(squeeze(&t.concat()), squeeze(&md));
    assert!(t.iter().all(|s| !s.trim().is_empty() && s == s.trim()));
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
}

#[test]
fn empty_and_whitespace_only_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let opt = ReadOptions::default();
    let p = write(dir.path(), "empty.txt", "");
    input_err(&p, &opt, "is empty: nothing to review");
    let p = write(dir.path(), "blank.md", " \r\n\t\n  \n");
    input_err(&p, &opt, "is empty: nothing to review");
}

#[test]
fn binary_and_invalid_utf8_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let opt = ReadOptions::default();
    // Pseudo-random bytes with NULs.
    let mut x: u32 = 12345;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    assert!(bytes.contains(&0));
    let p = write(dir.path(), "blob.bin", &bytes);
    let msg = input_err(&p, &opt, "is not text (binary data at byte ");
    assert!(msg.contains("hone review reads .txt, .md, .pdf and ContractNLI .json"));

    let p = write(
        dir.path(),
        "latin1.txt",
        b"The Recipient \xe9 shall keep it secret.",
    );
    input_err(&p, &opt, "is not text (binary data at byte 14)");

    let p = write(
        dir.path(),
        "nul.txt",
        b"The Recipient\0shall keep it secret.",
    );
    input_err(&p, &opt, "binary data at byte 13");
}

#[test]
fn utf16_with_bom_is_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = vec![0xFF, 0xFE];
    for u in "The Recipient shall keep it secret.\r\n".encode_utf16() {
        bytes.extend(u.to_le_bytes());
    }
    let p = write(dir.path(), "notepad.txt", &bytes);
    let d = read_one(&p);
    assert_eq!(d.text, "The Recipient shall keep it secret.\n");
    assert_eq!(texts(&d), ["The Recipient shall keep it secret."]);
}

#[test]
fn text_over_the_limit_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "long.txt", "a".repeat(500));
    input_err(
        &p,
        &ReadOptions { max_chars: 100 },
        "has 500 characters, more than the limit of 100; split it or raise --max-chars",
    );
    // Characters, not bytes: 100 two-byte characters fit a limit of 100.
    let p = write(dir.path(), "umlauts.txt", "ä".repeat(100));
    assert!(read_inputs(&p, &ReadOptions { max_chars: 100 }).is_ok());
    // Straight from text.
    let err = from_text(
        "x",
        "pasted.txt",
        "b".repeat(101),
        &ReadOptions { max_chars: 100 },
    )
    .unwrap_err();
    assert!(matches!(err, Error::Input { .. }));
    assert!(err.to_string().contains("pasted.txt"), "{err}");
    assert!(err.to_string().contains("has 101 characters"), "{err}");
}

#[test]
fn a_5_mb_text_file_fails_fast_with_the_default_limit() {
    let dir = tempfile::tempdir().unwrap();
    let line = "The Recipient shall keep the Confidential Information secret at all times.\n";
    let mut text = line.repeat(5_000_000 / line.len() + 1);
    text.truncate(5_000_000);
    let p = write(dir.path(), "huge.txt", &text);
    let t0 = Instant::now();
    input_err(
        &p,
        &ReadOptions::default(),
        "has 5000000 characters, more than the limit of 1000000; split it or raise --max-chars",
    );
    assert!(t0.elapsed().as_secs_f64() < 5.0, "{:?}", t0.elapsed());
}

#[test]
fn non_english_text_gets_the_warning_and_english_does_not() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [("de.txt", GERMAN_NDA), ("zh.txt", CHINESE_NDA)] {
        let p = write(dir.path(), name, text);
        let d = read_one(&p);
        assert!(has_not_english(&d), "{name}: {:?}", d.warnings);
        assert!(!d.spans.is_empty());
    }
    let p = write(dir.path(), "en.txt", ENGLISH_NDA);
    let d = read_one(&p);
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    assert!(looks_english(ENGLISH_NDA));
    assert!(!looks_english(GERMAN_NDA));
    assert!(!looks_english(CHINESE_NDA));
}

#[test]
fn contractnli_json_gives_one_doc_per_document_with_its_own_spans() {
    let dir = tempfile::tempdir().unwrap();
    let text1 = "CONFIDENTIALITY AGREEMENT\nThe Recipient shall keep the Information secret. It \
                 may share it with its employees.\n";
    let text2 = "MUTUAL NDA\n\nEach party shall return all Confidential Information on request.";
    let json = serde_json::json!({
        "documents": [
            {"id": 1, "file_name": "a.pdf", "text": text1, "document_type": "search-pdf",
             "url": "", "spans": [[0, 25], [26, 75], [75, 110]],
             "annotation_sets": [{"annotations": {"nda-1": {"choice": "Entailment", "spans": [1]}}}]},
            {"id": 2, "file_name": "b.pdf", "text": text2, "document_type": "search-pdf",
             "url": "", "spans": [[0, 10], [10, 12], [12, 76]],
             "annotation_sets": [{"annotations": {}}]}
        ],
        "labels": {"nda-1": {"short_description": "Explicit identification",
                             "hypothesis": "All Confidential Information shall be expressly identified by the Disclosing Party."}}
    });
    let p = write(dir.path(), "test.json", json.to_string());
    let docs = read_inputs(&p, &ReadOptions::default()).unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0].doc_id, "1");
    assert_eq!(docs[1].doc_id, "2");
    assert_eq!(docs[0].text, text1);
    assert_eq!(docs[0].spans, [[0, 25], [26, 75], [75, 110]]);
    assert_eq!(
        texts(&docs[0])[1],
        "The Recipient shall keep the Information secret. "
    );
    // The blank span [10, 12) ("\n\n") is dropped; the others are the file's, untouched.
    assert_eq!(docs[1].spans, [[0, 10], [12, 76]]);
    assert_eq!(texts(&docs[1])[0], "MUTUAL NDA");
    for d in &docs {
        assert_eq!(d.source, p.display().to_string());
    }
}

#[test]
fn documents_jsonl_gives_one_doc_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let line = |id: &str, text: &str, spans: &str| {
        format!(
            r#"{{"id":"{id}","file_name":"{id}.pdf","text":"{text}","spans":{spans},"labels":{{"nda-1":{{"label":"not_mentioned","spans":[]}}}}}}"#
        )
    };
    let body = format!(
        "{}\n\n{}\n",
        line(
            "7",
            "The Recipient shall keep it secret.\\nIt shall return it.",
            "[[0,35],[36,55]]"
        ),
        line("9", "Nothing here is confidential.", "[[0,29]]"),
    );
    let p = write(dir.path(), "documents.jsonl", body);
    let docs = read_inputs(&p, &ReadOptions::default()).unwrap();
    let ids: Vec<&str> = docs.iter().map(|d| d.doc_id.as_str()).collect();
    assert_eq!(ids, ["7", "9"]);
    assert_eq!(docs[0].spans, [[0, 35], [36, 55]]);
    assert_eq!(
        texts(&docs[0]),
        ["The Recipient shall keep it secret.", "It shall return it."]
    );
    assert_eq!(texts(&docs[1]), ["Nothing here is confidential."]);

    // The real reader of documents.jsonl agrees on what the file is.
    let eval = hone_data::contractnli::read_documents(&p).unwrap();
    assert_eq!(eval[0].spans, docs[0].spans);
}

#[test]
fn json_in_another_shape_is_an_error_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let opt = ReadOptions::default();
    let p = write(
        dir.path(),
        "other.json",
        r#"{"data": [1, 2], "version": 3}"#,
    );
    input_err(&p, &opt, "no \"documents\" field (it has: data, version)");
    let p = write(dir.path(), "list.json", r#"[{"text": "x"}]"#);
    input_err(&p, &opt, "the top level is a list");
    let p = write(dir.path(), "broken.json", r#"{"documents": [}"#);
    input_err(&p, &opt, "is not valid JSON (line 1, column");
    let p = write(dir.path(), "nodocs.json", r#"{"documents": []}"#);
    input_err(&p, &opt, "empty \"documents\" list");
    let p = write(
        dir.path(),
        "notext.json",
        r#"{"documents": [{"id": 4, "spans": []}]}"#,
    );
    input_err(
        &p,
        &opt,
        "document 1 is not a ContractNLI document: missing field `text`",
    );
    let p = write(
        dir.path(),
        "badspan.json",
        r#"{"documents": [{"id": 4, "text": "Short text.", "spans": [[0, 99]]}]}"#,
    );
    input_err(
        &p,
        &opt,
        "document 4: span 0 [0, 99) is outside the text (11 characters)",
    );
    // Found by the contractnli fuzz target: overlapping spans were reviewed as given.
    let p = write(
        dir.path(),
        "overlap.json",
        r#"{"documents": [{"id": 5, "text": "One two. Three four.", "spans": [[0, 8], [6, 20]]}]}"#,
    );
    input_err(
        &p,
        &opt,
        "document 5: span 1 [6, 20) starts before span 0 [0, 8) ends; spans must be in order",
    );
    let p = write(
        dir.path(),
        "spans.jsonl",
        "{\"id\":\"1\",\"text\":\"A.\",\"spans\":[[0,2]]}\n{\"messages\":[]}\n",
    );
    input_err(&p, &opt, "line 2: not an evaluation document");
}

#[test]
fn a_minimal_pdf_gives_its_text() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = one_page_pdf("BT /F1 12 Tf 72 720 Td (This Agreement is confidential.) Tj ET");
    let p = write(dir.path(), "tiny.pdf", &bytes);
    let d = read_one(&p);
    assert_eq!(d.doc_id, "tiny");
    assert_eq!(d.text.trim(), "This Agreement is confidential.");
    assert_eq!(texts(&d), ["This Agreement is confidential."]);
    // Recognized by its content too, whatever its name.
    let p = write(dir.path(), "scan-0001", &bytes);
    assert_eq!(read_one(&p).text.trim(), "This Agreement is confidential.");
}

#[test]
fn a_sentence_wrapped_over_pdf_lines_is_one_span() {
    let dir = tempfile::tempdir().unwrap();
    let content = "BT /F1 12 Tf 72 720 Td (The Recipient shall keep the) Tj 0 -14 Td \
                   (Confidential Information secret and shall not) Tj 0 -14 Td \
                   (disclose it.) Tj 0 -28 Td (2. Term) Tj ET";
    let p = write(dir.path(), "wrapped.pdf", one_page_pdf(content));
    let d = read_one(&p);
    assert_eq!(
        texts(&d),
        [
            "The Recipient shall keep the Confidential Information secret and shall not \
             disclose it.",
            "2. Term",
        ],
        "{:?}",
        d.text
    );
}

#[test]
fn pdf_without_text_and_corrupt_pdf_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let opt = ReadOptions::default();
    // A page that only draws a rectangle: no text layer.
    let p = write(
        dir.path(),
        "scanned.pdf",
        one_page_pdf("0 0 1 rg 72 72 200 200 re f"),
    );
    input_err(
        &p,
        &opt,
        "has no text layer (a scanned PDF?); run OCR first",
    );

    let mut bytes = b"%PDF-1.4\n".to_vec();
    bytes.extend((0..2000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    let p = write(dir.path(), "corrupt.pdf", &bytes);
    input_err(&p, &opt, "PDF");

    // Truncated halfway through a good one.
    let good = one_page_pdf("BT /F1 12 Tf 72 720 Td (This Agreement is confidential.) Tj ET");
    let p = write(dir.path(), "cut.pdf", &good[..good.len() / 2]);
    input_err(&p, &opt, "PDF");

    let p = write(
        dir.path(),
        "notreally.pdf",
        "This Agreement is confidential.",
    );
    input_err(&p, &opt, "is not a PDF (no %PDF- header)");
}

/// `data` as a zlib stream of stored (uncompressed) deflate blocks: valid FlateDecode data
/// written by hand.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let chunks: Vec<&[u8]> = data.chunks(65_535).collect();
    for (i, c) in chunks.iter().enumerate() {
        out.push(u8::from(i + 1 == chunks.len()));
        let len = c.len() as u16;
        out.extend(len.to_le_bytes());
        out.extend((!len).to_le_bytes());
        out.extend(*c);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + x as u32) % 65_521;
        b = (b + a) % 65_521;
    }
    out.extend(((b << 16) | a).to_be_bytes());
    out
}

/// Text shown with the `'` and `"` operators (move to the next line, then show) is read like
/// `Tj` after `T*`, in order, compressed or not.
#[test]
fn pdf_text_shown_with_quote_operators_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let content =
        "BT /F1 12 Tf 14 TL 72 720 Td (The Recipient shall keep the information secret.) Tj \
                   (The obligations survive for five years.) ' \
                   1 0 (Disclosure to employees is permitted.) \" ET";
    let want = [
        "The Recipient shall keep the information secret.",
        "The obligations survive for five years.",
        "Disclosure to employees is permitted.",
    ];
    let p = write(dir.path(), "quotes.pdf", one_page_pdf(content));
    let d = read_one(&p);
    assert_eq!(texts(&d), want, "{:?}", d.text);
    let p = write(
        dir.path(),
        "quotes-flate.pdf",
        pdf_with_stream(" /Filter /FlateDecode", &zlib_stored(content.as_bytes())),
    );
    let d = read_one(&p);
    assert_eq!(texts(&d), want, "{:?}", d.text);
    // A page shown only with `'`: not mistaken for a scan.
    let only = "BT /F1 12 Tf 14 TL 72 720 Td (This Agreement is confidential.) ' ET";
    let p = write(dir.path(), "only-quote.pdf", one_page_pdf(only));
    assert_eq!(texts(&read_one(&p)), ["This Agreement is confidential."]);
}

/// A compressed content stream that does not decompress is reported as a corrupt PDF naming
/// the page and stream, not as a scan that needs OCR.
#[test]
fn a_corrupt_compressed_stream_is_a_corrupt_pdf_not_a_scan() {
    let dir = tempfile::tempdir().unwrap();
    let content = b"BT /F1 12 Tf 72 720 Td (This Agreement is confidential.) Tj ET";
    let mut z = zlib_stored(content);
    // Break the stored block's length check (NLEN no longer the complement of LEN).
    z[5] ^= 0xff;
    let p = write(
        dir.path(),
        "broken.pdf",
        pdf_with_stream(" /Filter /FlateDecode", &z),
    );
    let msg = input_err(&p, &ReadOptions::default(), "corrupt PDF");
    assert!(
        msg.contains("page 1") && msg.contains("object 4 0") && !msg.contains("OCR"),
        "{msg}"
    );
}

#[test]
fn missing_file_and_directory_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nowhere.txt");
    let err = read_inputs(&p, &ReadOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Io { .. }));
    assert!(err.to_string().contains("nowhere.txt"), "{err}");

    let sub = dir.path().join("contracts");
    std::fs::create_dir(&sub).unwrap();
    input_err(&sub, &ReadOptions::default(), "is a directory");
}

#[test]
fn pdf_lines_that_wrap_a_sentence_are_rejoined() {
    let raw = "1. Confidentiality\nThe Recipient shall keep the\nConfidential Information \
               secret and\nshall not disclose it to\nany third party, non-\nexclusively.\n\n\
               2. TERM OF THE\nAGREEMENT\n(a) first item;\n(b) second item.";
    assert_eq!(
        reflow_pdf_text(raw),
        "1. Confidentiality\nThe Recipient shall keep the Confidential Information secret and \
         shall not disclose it to any third party, non-exclusively.\n\n2. TERM OF THE\n\
         AGREEMENT\n(a) first item;\n(b) second item."
    );
}

#[test]
fn a_page_that_is_its_own_parent_is_a_corrupt_pdf_not_a_hang() {
    // Found by the pdf fuzz target: the extractor follows /Parent for inherited attributes
    // without remembering where it has been, and looped forever.
    let dir = tempfile::tempdir().unwrap();
    let ok = one_page_pdf("BT /F1 12 Tf 72 720 Td (This Agreement is confidential.) Tj ET");
    let looped = String::from_utf8(ok)
        .unwrap()
        .replacen("/Parent 2 0 R", "/Parent 3 0 R", 1)
        .into_bytes();
    let p = write(dir.path(), "loop.pdf", &looped);
    input_err(
        &p,
        &ReadOptions::default(),
        "page 1: its page tree loops (object 3 0 is its own ancestor)",
    );
}
