//! Out-of-scope documents for the NDA task (`hone data synth nda --out-of-scope N`): leases,
//! offer letters, purchase orders, meeting minutes, product notices and recipes, annotated
//! with every check `NotMentioned`. Without them, a model trained only on NDAs has never
//! seen a document that is not one, and reads confidentiality into whatever it is given.

use std::collections::BTreeMap;

use crate::contractnli::{Annotation, AnnotationSet, Document};
use crate::hash::Rng;
use crate::nda::CHECKS;
use crate::synth::MONTHS;

const NAMES: &[&str] = &[
    "Harbor Lane Properties",
    "Maria Okafor",
    "Northwind Supplies",
    "Juniper Dental",
    "Calloway Printing",
    "Samir Haddad",
    "Bluefield Orchards",
    "Tessaly Foods",
    "Granite Peak Outfitters",
    "Ana Lindqvist",
    "Oakridge Community Club",
    "Pell & Sons",
];
const PLACES: &[&str] = &[
    "Portland", "Leeds", "Lyon", "Toronto", "Adelaide", "Dublin", "Austin", "Bergen",
];

/// (title, sentences); `{a}`, `{b}`: names, `{place}`, `{n}`: a number, `{m}`: a month.
const KINDS: &[(&str, &[&str])] = &[
    (
        "RESIDENTIAL LEASE AGREEMENT",
        &[
            "{a} (the Landlord) lets to {b} (the Tenant) the apartment at {n} Mill Street, {place}.",
            "The term of the lease begins on 1 {m} and runs for {n} months.",
            "The monthly rent is {n}00 payable in advance on the first day of each month.",
            "The Tenant shall pay a security deposit equal to one month's rent.",
            "The Tenant may not keep pets without the Landlord's written permission.",
            "The Landlord is responsible for repairs to the roof, plumbing and heating.",
            "The Tenant shall keep the premises clean and return them in good condition.",
            "Either party may end the lease at its expiry by giving two months' notice.",
            "Utilities other than water are paid by the Tenant.",
        ],
    ),
    (
        "OFFER OF EMPLOYMENT",
        &[
            "Dear {b}, {a} is pleased to offer you the position of Warehouse Supervisor in {place}.",
            "Your start date will be {n} {m}, and your normal hours are 38 per week.",
            "Your annual salary will be {n}000, paid monthly in arrears.",
            "You will be entitled to 25 days of paid holiday each year in addition to public holidays.",
            "The first three months of employment are a probationary period.",
            "Please sign and return a copy of this letter to accept the offer.",
            "We look forward to welcoming you to the team.",
        ],
    ),
    (
        "PURCHASE ORDER",
        &[
            "Buyer: {a}, {place}. Supplier: {b}.",
            "Item 1: {n} cartons of A4 copier paper at 24.50 per carton.",
            "Item 2: {n} boxes of blue ballpoint pens at 6.20 per box.",
            "Delivery to the buyer's loading dock no later than {n} {m}.",
            "Payment within 30 days of the invoice date by bank transfer.",
            "Please quote the order number on every invoice and delivery note.",
        ],
    ),
    (
        "MINUTES OF THE MONTHLY MEETING",
        &[
            "The meeting of {a} was held in {place} on {n} {m} and opened at 7 pm.",
            "Present: the chair, the treasurer, {b} and {n} members.",
            "The minutes of the previous meeting were approved without changes.",
            "The treasurer reported a balance of {n}40 in the club account.",
            "It was agreed to repaint the clubhouse before the summer season.",
            "{b} offered to organise the autumn fundraising dinner.",
            "The next meeting will take place on the first Tuesday of next month.",
        ],
    ),
    (
        "PRODUCT SAFETY NOTICE",
        &[
            "{a} is recalling the model {n} electric kettle sold in {place} since {m}.",
            "A fault in the base may cause the kettle to overheat.",
            "Customers should stop using the kettle and unplug it.",
            "Return the kettle to any store for a full refund; no receipt is needed.",
            "We apologise for the inconvenience and thank customers for their cooperation.",
        ],
    ),
    (
        "RECIPE: APPLE CRUMBLE",
        &[
            "Preheat the oven to 180 degrees and butter a deep baking dish.",
            "Peel, core and slice {n} apples and toss them with sugar and cinnamon.",
            "Rub 100 g of cold butter into 150 g of flour until it looks like breadcrumbs.",
            "Stir in 75 g of brown sugar and a handful of rolled oats.",
            "Spread the apples in the dish and scatter the crumble over them.",
            "Bake for 40 minutes until golden, and serve warm with custard.",
        ],
    ),
];

fn fill(s: &str, a: &str, b: &str, place: &str, rng: &mut Rng) -> String {
    let mut out = s
        .replace("{a}", a)
        .replace("{b}", b)
        .replace("{place}", place);
    while let Some(i) = out.find("{n}") {
        out.replace_range(i..i + 3, &(2 + rng.below(27)).to_string());
    }
    while let Some(i) = out.find("{m}") {
        let m: &str = MONTHS[rng.below(MONTHS.len())];
        out.replace_range(i..i + 3, m);
    }
    out
}

/// `n` out-of-scope documents, numbered from `first_id`; every check `NotMentioned`.
pub fn documents(n: usize, seed: u64, first_id: usize) -> Vec<Document> {
    let mut rng = Rng::new(seed ^ 0x6f75_745f_7363_6f70);
    (0..n)
        .map(|k| {
            let (title, sentences) = KINDS[k % KINDS.len()];
            let a = *rng.pick(NAMES);
            let mut b = *rng.pick(NAMES);
            while b == a {
                b = *rng.pick(NAMES);
            }
            let place = *rng.pick(PLACES);
            let mut spans_text = vec![title.to_string()];
            let mut picks: Vec<usize> = (0..sentences.len()).collect();
            // Keep most sentences, in their order (a letter or recipe reads in order).
            picks.retain(|_| rng.chance(0.85));
            if picks.len() < 3 {
                picks = (0..sentences.len()).collect();
            }
            for i in picks {
                spans_text.push(fill(sentences[i], a, b, place, &mut rng));
            }
            let mut text = String::new();
            let mut spans = Vec::new();
            let mut chars = 0;
            for (i, s) in spans_text.iter().enumerate() {
                if i > 0 {
                    text.push('\n');
                    chars += 1;
                }
                let len = s.chars().count();
                spans.push([chars, chars + len]);
                text.push_str(s);
                chars += len;
            }
            let annotations: BTreeMap<String, Annotation> = CHECKS
                .iter()
                .map(|c| {
                    (
                        c.id.to_string(),
                        Annotation {
                            choice: "NotMentioned".into(),
                            spans: Vec::new(),
                        },
                    )
                })
                .collect();
            let id = first_id + k;
            Document {
                id: serde_json::Value::String(format!("synth-out-of-scope-{id:05}")),
                file_name: format!("synth-out-of-scope-{id:05}.txt"),
                url: String::new(),
                document_type: "synthetic out-of-scope".into(),
                text,
                spans,
                annotation_sets: vec![AnnotationSet { annotations }],
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_scope_documents_mention_no_check_and_have_valid_spans() {
        let docs = documents(12, 3, 100);
        assert_eq!(docs.len(), 12);
        let ids: std::collections::HashSet<String> = docs.iter().map(|d| d.id_string()).collect();
        assert_eq!(ids.len(), 12);
        for d in &docs {
            let texts = d.span_texts().unwrap();
            assert!(texts.len() >= 4, "{texts:?}");
            assert!(texts.iter().all(|t| !t.contains('{')), "{texts:?}");
            let a = &d.annotation_sets[0].annotations;
            assert_eq!(a.len(), CHECKS.len());
            assert!(a
                .values()
                .all(|x| x.choice == "NotMentioned" && x.spans.is_empty()));
            assert!(!d.text.to_lowercase().contains("confidential"));
        }
    }
}
