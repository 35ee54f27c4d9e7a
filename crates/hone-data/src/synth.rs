//! `hone data synth nda`: the project's own NDA data set. Synthetic agreements are assembled
//! from clauses written for each of the 17 checks (both polarities where the check has two)
//! and clauses that bear on none (definitions, notices, boilerplate), with varied party names,
//! defined terms, numbering styles, headings, sentence order and register. They are emitted in
//! ContractNLI's JSON format (so import, review and evaluation treat them like real NDAs) and
//! already imported. The same seed gives byte-identical output.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use crate::contractnli::{self, Annotation, AnnotationSet, Dataset, Document, LabelInfo};
use crate::error::Result;
use crate::hash::{hash_bytes, Rng};
use crate::nda::{self, CHECKS};

const COMPANIES: &[&str] = &[
    "Acme Robotics",
    "Birchwood Analytics",
    "Calder Biotech",
    "Dunmore Foods",
    "Everline Energy",
    "Fairhaven Logistics",
    "Granite Peak Software",
    "Harbor Lane Media",
    "Ironbridge Capital",
    "Juniper Health",
    "Keystone Materials",
    "Larkspur Devices",
    "Meridian Retail",
    "Northgate Semiconductors",
    "Oakhurst Pharma",
    "Pinecrest Labs",
    "Quarry Hill Mining",
    "Redfern Aerospace",
    "Silverline Telecom",
    "Tidewater Marine",
    "Umbra Security",
    "Valemont Insurance",
    "Westbrook Textiles",
    "Yarrow Agritech",
    "Zephyr Mobility",
];
const FORMS: &[&str] = &["Inc.", "Ltd.", "LLC", "GmbH", "S.A.", "Corp.", "plc"];
const PLACES: &[&str] = &[
    "Delaware",
    "New York",
    "England and Wales",
    "Ontario",
    "California",
    "Singapore",
    "Ireland",
    "Texas",
];
const PURPOSES: &[&str] = &[
    "evaluating a possible supply agreement",
    "assessing a potential acquisition",
    "discussing a joint research project",
    "negotiating a software licence",
    "exploring a distribution partnership",
    "reviewing a proposed investment",
    "considering a manufacturing arrangement",
    "preparing a bid for a tender",
];
const CI_TERMS: &[&str] = &[
    "Confidential Information",
    "Proprietary Information",
    "Evaluation Material",
    "Protected Information",
];
const ROLE_TERMS: &[(&str, &str)] = &[
    ("the Disclosing Party", "the Receiving Party"),
    ("the Discloser", "the Recipient"),
    ("the Company", "the Counterparty"),
];
pub(crate) const MONTHS: &[&str] = &[
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Clause phrasings per check: `(check id, entailed, contradicted)`. Placeholders: `{D}` / `{R}`
/// the disclosing / receiving party's defined name, `{CI}` the defined term, `{P}` the purpose,
/// `{N}` a number of years.
type Phrasings = &'static [&'static str];
const CLAUSES: &[(&str, Phrasings, Phrasings)] = &[
    ("nda-1",
     &["{CI} shall include only information that {D} marks as \"confidential\" at the time of disclosure.",
       "Information is protected under this Agreement only if it is clearly labelled or otherwise expressly designated by {D} as confidential.",
       "Any information disclosed orally or visually shall be {CI} only if {D} identifies it as confidential when disclosing it and confirms that designation in writing within thirty days."],
     &["All information disclosed by {D} is {CI}, whether or not it is marked, labelled or otherwise identified as confidential.",
       "The absence of a confidentiality legend does not mean that information is not {CI}; no marking is required.",
       "{R} shall treat as {CI} all non-public information received from {D}, even where it bears no proprietary notice."]),
    ("nda-2",
     &["For the purposes of this Agreement, {CI} is limited to technical data such as specifications, source code, drawings and engineering know-how.",
       "Only technical information, including designs, formulas, algorithms and test results, falls within the definition of {CI}."],
     &["{CI} covers business, financial, commercial and marketing information as well as technical data.",
       "The term {CI} extends to customer lists, pricing, business plans, forecasts and personnel information, in addition to any technical know-how.",
       "Non-technical information, including strategies, supplier terms and financial statements, is {CI} for all purposes of this Agreement."]),
    ("nda-3",
     &["{CI} includes information communicated orally, in meetings, by telephone or by demonstration.",
       "Information conveyed verbally by {D} or its representatives is {CI} to the same extent as written material."],
     &["Information that is disclosed orally and not reduced to writing is not {CI} under this Agreement.",
       "Verbal communications between the parties are excluded from the obligations set out in this Agreement."]),
    ("nda-4",
     &["{R} shall use {CI} solely for the purpose of {P} and for no other purpose.",
       "{R} will not use any {CI} except as strictly necessary for {P}.",
       "Use of {CI} by {R} is restricted to {P}, and any other use requires the prior written consent of {D}."],
     &["{R} may use {CI} for any lawful business purpose, including purposes unrelated to {P}.",
       "Nothing in this Agreement restricts the purposes for which {R} may use {CI}."]),
    ("nda-5",
     &["{R} may disclose {CI} to those of its employees who need to know it for {P}, provided they are bound by duties of confidentiality.",
       "Access to {CI} may be given to officers and staff of {R} on a need-to-know basis."],
     &["{R} shall not permit any of its employees to access {CI} without the separate written approval of {D} for each individual.",
       "No employee of {R}, other than the signatory of this Agreement, may receive or review {CI}."]),
    ("nda-7",
     &["{R} may share {CI} with its legal counsel, accountants and other professional advisers who are bound by obligations of confidentiality.",
       "Disclosure of {CI} to consultants, agents and contractors of {R} is permitted where they have agreed in writing to terms at least as protective as these."],
     &["{R} shall not disclose {CI} to any third party whatsoever, including its advisers, agents and contractors.",
       "Under no circumstances may {CI} be passed to consultants, financing sources or any other outside person."]),
    ("nda-8",
     &["If {R} is required by law, regulation or court order to disclose any {CI}, it shall promptly notify {D} so that {D} may seek a protective order.",
       "Where disclosure is compelled by a subpoena or similar legal process, {R} will give {D} prompt written notice before making the disclosure and will disclose only the portion legally required.",
       "{R} shall inform {D} without delay of any governmental or judicial demand for {CI} and shall cooperate with any effort by {D} to resist it."],
     &[]),
    ("nda-10",
     &["Neither party shall disclose the existence or terms of this Agreement, or the fact that discussions about {P} are taking place.",
       "{R} shall keep confidential the fact that the parties have entered into negotiations and the status of those negotiations."],
     &[]),
    ("nda-11",
     &["{R} shall not reverse engineer, decompile or disassemble any prototype, software or sample provided by {D}.",
       "{R} will not analyse the composition or structure of any materials received from {D} in order to derive their design or formula."],
     &[]),
    ("nda-12",
     &["Nothing in this Agreement prevents {R} from independently developing products or information similar to {CI}, provided it does not use {CI} in doing so.",
       "{D} acknowledges that {R} may already be working on, or may later create on its own, technology that resembles what is disclosed."],
     &[]),
    ("nda-13",
     &["The obligations of this Agreement do not apply to information that {R} lawfully obtains from a third party without a duty of confidentiality.",
       "{R} remains free to acquire comparable information from other sources who are entitled to provide it."],
     &[]),
    ("nda-15",
     &["No licence or other right in any patent, copyright, trade secret or other intellectual property of {D} is granted to {R} by this Agreement.",
       "All {CI} remains the property of {D}, and nothing herein confers on {R} any rights in it beyond those expressly stated."],
     &[]),
    ("nda-16",
     &["Upon termination of this Agreement or at the request of {D}, {R} shall promptly return or destroy all {CI} in its possession.",
       "Within ten days after a written request from {D}, {R} will deliver back or securely erase every document containing {CI}."],
     &["{R} shall have no obligation to return or destroy {CI} at the end of this Agreement.",
       "{R} may keep all materials received under this Agreement indefinitely, and {D} may not require their return."]),
    ("nda-17",
     &["{R} may make such copies of {CI} as are reasonably necessary for {P}, each bearing the same notices as the original.",
       "Reproduction of {CI} is permitted only to the extent required for the internal review of {R}."],
     &["{R} shall not copy, photograph or otherwise reproduce any {CI} in whole or in part.",
       "No duplicates of documents furnished by {D} may be made by any means without exception."]),
    ("nda-18",
     &["For {N} years after the date of this Agreement, {R} shall not solicit for employment any employee of {D} with whom it had contact in connection with {P}.",
       "{R} agrees not to induce any staff member or consultant of {D} to leave their engagement during the term of this Agreement and for twelve months afterwards."],
     &[]),
    ("nda-19",
     &["The obligations of confidentiality in this Agreement shall survive its termination or expiry for a period of {N} years.",
       "Termination of this Agreement shall not relieve {R} of its duties regarding {CI} disclosed before the date of termination."],
     &["All obligations of {R} under this Agreement end immediately upon its termination.",
       "Once this Agreement expires, none of its provisions shall bind either party in any respect."]),
    ("nda-20",
     &["Notwithstanding the duty to return materials, {R} may retain one archival copy of {CI} for the sole purpose of determining its continuing obligations.",
       "{R} is not required to purge electronic copies stored in automatic back-up systems, provided those copies remain subject to this Agreement."],
     &["{R} shall keep no copy, summary or extract of any {CI} after the return or destruction of materials, including in back-up systems.",
       "After materials are returned or destroyed, {R} must certify that it retains no {CI} in any form whatsoever."]),
];

/// Clauses that bear on no check, by section.
const NEUTRAL_INTRO: &[&str] = &[
    "{D} and {R} wish to exchange certain information in connection with {P}.",
    "The parties intend to hold discussions concerning {P} and expect to share information for that reason.",
    "In consideration of the mutual promises in this Agreement, the parties agree as follows.",
    "This Agreement sets out the terms on which information will be made available in connection with {P}.",
];
const NEUTRAL_MISC: &[&str] = &[
    "This Agreement is governed by the laws of {PLACE}.",
    "The courts of {PLACE} shall have exclusive jurisdiction over any dispute arising out of this Agreement.",
    "Notices under this Agreement shall be given in writing and delivered by hand, by courier or by registered mail to the addresses stated above.",
    "This Agreement constitutes the entire agreement between {D} and {R} regarding {P}.",
    "No amendment to this Agreement is effective unless it is in writing and signed by both parties.",
    "If any provision of this Agreement is held invalid, the remaining provisions continue in full force and effect.",
    "This Agreement may be executed by {D} and {R} in counterparts, each of which is deemed an original.",
    "Neither party may assign this Agreement without the prior written consent of the other party.",
    "No failure or delay in exercising any right under this Agreement operates as a waiver of it.",
    "Each party shall bear its own costs in connection with the negotiation of this Agreement.",
    "This Agreement does not oblige either party to proceed with {P} or any other transaction.",
    "Headings are for convenience only and do not affect the interpretation of this Agreement between {D} and {R}.",
];
const HEADINGS: &[&str] = &[
    "Definitions",
    "Obligations",
    "Permitted Disclosures",
    "Exceptions",
    "Legal Requirements",
    "Return of Materials",
    "Ownership",
    "Copies",
    "Non-Solicitation",
    "Term",
    "General",
];

fn heading_for(check: &str) -> usize {
    match check {
        "nda-1" | "nda-2" | "nda-3" => 0,
        "nda-4" | "nda-10" | "nda-11" => 1,
        "nda-5" | "nda-7" => 2,
        "nda-12" | "nda-13" => 3,
        "nda-8" => 4,
        "nda-16" | "nda-20" => 5,
        "nda-15" => 6,
        "nda-17" => 7,
        "nda-18" => 8,
        _ => 9,
    }
}

/// A sentence and the (check, entailed?) it is evidence for.
type Sentence = (String, Option<(&'static str, bool)>);

struct Vars {
    d: String,
    r: String,
    d_full: String,
    r_full: String,
    ci: &'static str,
    purpose: &'static str,
    place: &'static str,
    years: usize,
    plain: bool,
}

impl Vars {
    fn fill(&self, t: &str) -> String {
        let mut s = t
            .replace("{D}", &self.d)
            .replace("{R}", &self.r)
            .replace("{CI}", self.ci)
            .replace("{P}", self.purpose)
            .replace("{PLACE}", self.place)
            .replace("{N}", ["two", "three", "five", "seven"][self.years % 4]);
        if self.plain {
            s = s.replace(" shall ", " will ");
        }
        // Capitalize a leading "the".
        if let Some(rest) = s.strip_prefix("the ") {
            s = format!("The {rest}");
        }
        s
    }
}

/// One synthetic document.
fn document(id: usize, rng: &mut Rng) -> Document {
    let (dc, rc) = loop {
        let a = rng.below(COMPANIES.len());
        let b = rng.below(COMPANIES.len());
        if a != b {
            break (a, b);
        }
    };
    let d_full = format!("{} {}", COMPANIES[dc], rng.pick(FORMS));
    let r_full = format!("{} {}", COMPANIES[rc], rng.pick(FORMS));
    let (d, r) = if rng.chance(0.5) {
        let (a, b) = *rng.pick(ROLE_TERMS);
        (a.to_string(), b.to_string())
    } else {
        (
            format!("\"{}\"", COMPANIES[dc].split(' ').next().unwrap_or("")).replace('"', ""),
            COMPANIES[rc].split(' ').next().unwrap_or("").to_string(),
        )
    };
    let v = Vars {
        d,
        r,
        d_full,
        r_full,
        ci: CI_TERMS[rng.below(CI_TERMS.len())],
        purpose: PURPOSES[rng.below(PURPOSES.len())],
        place: PLACES[rng.below(PLACES.len())],
        years: rng.below(4),
        plain: rng.chance(0.3),
    };
    let numbering = rng.below(4);
    // Sections: heading index -> sentences with their (check, polarity).
    let mut sections: Vec<Vec<Sentence>> = vec![Vec::new(); HEADINGS.len()];
    let mut annotations: BTreeMap<String, (String, Vec<usize>)> = BTreeMap::new();
    for &(check, ent, con) in CLAUSES {
        let roll = rng.below(10);
        let choice = if roll < 3 {
            None
        } else if !con.is_empty() && roll < 6 {
            Some(false)
        } else {
            Some(true)
        };
        annotations.insert(check.to_string(), ("NotMentioned".into(), Vec::new()));
        if let Some(entailed) = choice {
            let pool = if entailed { ent } else { con };
            let k = if pool.len() > 1 && rng.chance(0.25) {
                2
            } else {
                1
            };
            let mut picks: Vec<usize> = (0..pool.len()).collect();
            rng.shuffle(&mut picks);
            for &p in &picks[..k] {
                sections[heading_for(check)].push((v.fill(pool[p]), Some((check, entailed))));
            }
        }
    }
    let mut misc: Vec<usize> = (0..NEUTRAL_MISC.len()).collect();
    rng.shuffle(&mut misc);
    for &m in &misc[..4 + rng.below(5)] {
        sections[10].push((v.fill(NEUTRAL_MISC[m]), None));
    }
    // Sentence order varies, but clauses of different checks in one section keep the checks'
    // order: with the previous span as context, "A then B" and "B then A" would be near-same
    // prompts with different answers, which QA rightly reports as contradictions.
    for s in sections.iter_mut() {
        rng.shuffle(s);
        s.sort_by_key(|(_, a)| a.map(|(c, _)| nda::check_index(c).unwrap_or(0)));
    }

    let mut spans_text: Vec<Sentence> = Vec::new();
    let title = *rng.pick(&[
        "NON-DISCLOSURE AGREEMENT",
        "MUTUAL CONFIDENTIALITY AGREEMENT",
        "CONFIDENTIALITY AGREEMENT",
        "AGREEMENT ON THE PROTECTION OF INFORMATION",
    ]);
    let reference = format!(
        "{}-{:04}",
        ["NDA", "CA", "REF", "LGL"][rng.below(4)],
        rng.below(10_000)
    );
    spans_text.push((
        match rng.below(3) {
            0 => format!("{title} ({reference})"),
            1 => format!("{title} between {} and {}", v.d_full, v.r_full),
            _ => format!("{reference}: {title}"),
        },
        None,
    ));
    let date = format!(
        "{} {}, {}",
        MONTHS[rng.below(12)],
        1 + rng.below(28),
        2015 + rng.below(10)
    );
    let (dd, rr) = (
        v.d.trim_start_matches("the ").to_string(),
        v.r.trim_start_matches("the ").to_string(),
    );
    spans_text.push((
        format!("This Agreement is made on {date} between {}, a company organised under the laws of {} (\"{}\"), and {} (\"{}\").", v.d_full, v.place, dd, v.r_full, rr),
        None,
    ));
    spans_text.push((v.fill(NEUTRAL_INTRO[rng.below(NEUTRAL_INTRO.len())]), None));
    let mut n = 0;
    for (h, sents) in sections.into_iter().enumerate() {
        if sents.is_empty() {
            continue;
        }
        n += 1;
        let prefix = match numbering {
            0 => format!("{n}. {}. ", HEADINGS[h]),
            1 => format!("Section {n} - {}: ", HEADINGS[h]),
            2 => format!("ARTICLE {} ({}). ", roman(n), HEADINGS[h].to_uppercase()),
            _ => format!("({}) ", (b'a' + (n as u8 - 1) % 26) as char),
        };
        for (j, (s, a)) in sents.into_iter().enumerate() {
            let text = if j == 0 {
                format!("{prefix}{s}")
            } else {
                match numbering {
                    0 => format!("{n}.{} {s}", j + 1),
                    1 => format!("{n}({}) {s}", (b'a' + j as u8) as char),
                    2 => format!("{}.{} {s}", roman(n), j + 1),
                    _ => format!(
                        "({})({}) {s}",
                        (b'a' + (n as u8 - 1) % 26) as char,
                        roman(j + 1).to_lowercase()
                    ),
                }
            };
            spans_text.push((text, a));
        }
    }
    spans_text.push((format!("IN WITNESS WHEREOF, {} and {} have signed this Agreement on the date first written above.", v.d_full, v.r_full), None));

    // Text and character offsets; list-like numbering goes on new lines.
    let mut text = String::new();
    let mut chars = 0usize;
    let mut spans = Vec::new();
    for (i, (s, a)) in spans_text.iter().enumerate() {
        if i > 0 {
            let sep = if i < 3
                || s.starts_with(|c: char| {
                    c.is_ascii_digit() || c == '(' || c == 'S' || c == 'A' || c == 'I'
                }) {
                "\n"
            } else {
                " "
            };
            text.push_str(sep);
            chars += sep.chars().count();
        }
        let len = s.chars().count();
        spans.push([chars, chars + len]);
        text.push_str(s);
        chars += len;
        if let Some((check, entailed)) = a {
            let e = annotations
                .get_mut(*check)
                .expect("every check has an entry");
            e.0 = if *entailed {
                "Entailment".into()
            } else {
                "Contradiction".into()
            };
            e.1.push(i);
        }
    }
    Document {
        id: serde_json::Value::String(format!("synth-{id:05}")),
        file_name: format!("synth-{id:05}.txt"),
        url: String::new(),
        document_type: "synthetic".into(),
        text,
        spans,
        annotation_sets: vec![AnnotationSet {
            annotations: annotations
                .into_iter()
                .map(|(k, (choice, spans))| (k, Annotation { choice, spans }))
                .collect(),
        }],
    }
}

fn roman(n: usize) -> String {
    const R: &[(usize, &str)] = &[(10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")];
    let mut n = n;
    let mut s = String::new();
    for &(v, r) in R {
        while n >= v {
            s.push_str(r);
            n -= v;
        }
    }
    s
}

/// `docs` synthetic NDAs for `seed`. No two documents are identical and no span prompt
/// (previous span + span) repeats: a document that would repeat one is drawn again.
pub fn generate(docs: usize, seed: u64) -> Dataset {
    let mut rng = Rng::new(seed);
    let mut seen_docs: HashSet<u64> = HashSet::new();
    let mut seen_prompts: HashSet<u64> = HashSet::new();
    let mut out = Vec::with_capacity(docs);
    let mut redraws = 0usize;
    while out.len() < docs {
        // With 10^6+ combinations per document this never binds at sensible sizes; it keeps a
        // huge request from looping forever (later documents may then repeat a span prompt).
        let strict = redraws < 1000 * docs.max(1);
        let doc = document(out.len(), &mut rng);
        let texts = doc.span_texts().expect("offsets are ours");
        let prompts: Vec<u64> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                hash_bytes(
                    nda::span_prompt(if i > 0 { Some(&texts[i - 1]) } else { None }, t).as_bytes(),
                )
            })
            .collect();
        let unique_inside = prompts.iter().collect::<HashSet<_>>().len() == prompts.len();
        let repeats = !unique_inside || prompts.iter().any(|p| seen_prompts.contains(p));
        if seen_docs.contains(&hash_bytes(doc.text.as_bytes())) || (strict && repeats) {
            if std::env::var_os("HONE_SYNTH_DEBUG").is_some() {
                let bad: Vec<&String> = texts
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| seen_prompts.contains(&prompts[*i]))
                    .map(|(_, t)| t)
                    .collect();
                eprintln!(
                    "redraw {}: inside {} repeats {:?}",
                    out.len(),
                    !unique_inside,
                    bad
                );
            }
            redraws += 1;
            continue;
        }
        seen_docs.insert(hash_bytes(doc.text.as_bytes()));
        seen_prompts.extend(prompts);
        out.push(doc);
    }
    let labels = CHECKS
        .iter()
        .map(|c| {
            (
                c.id.to_string(),
                LabelInfo {
                    short_description: c.name.into(),
                    hypothesis: c.statement.into(),
                },
            )
        })
        .collect();
    Dataset {
        documents: out,
        labels,
    }
}

/// Writes `nda.json` (ContractNLI format), `spans.jsonl` and `documents.jsonl` into `dir`.
pub fn write(ds: &Dataset, dir: &Path) -> Result<contractnli::Imported> {
    let json = serde_json::to_string(ds).expect("serializes");
    let path = dir.join("nda.json");
    crate::atomic::write_file(&path, json.as_bytes())?;
    let imp = contractnli::import(ds, &path)?;
    contractnli::write_imported(&imp, dir)?;
    Ok(imp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_clause_check_exists_and_polarities_match_the_task() {
        assert_eq!(CLAUSES.len(), 17);
        for &(id, ent, con) in CLAUSES {
            let c = nda::check(id).unwrap();
            assert!(!ent.is_empty());
            assert_eq!(!con.is_empty(), c.two_polarities, "{id}");
        }
        assert_eq!(roman(14), "XIV");
    }
}
