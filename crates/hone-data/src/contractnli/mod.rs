//! ContractNLI (Koreeda & Manning, 2021; CC BY 4.0): the one reader of its two forms, used by
//! `hone data`, `hone eval` and `hone review`.
//!
//! - [`official`]: the data set's own JSON (`{"documents": [...], "labels": {...}}`).
//! - [`documents`]: the evaluation file `hone data import contractnli` writes
//!   (`documents.jsonl`, one [`EvalDocument`] a line), and gold documents read from either form
//!   ([`read_gold`], the form detected from the content by [`detect_format`]).
//! - [`texts`]: only the ids, texts and spans of either form, for reviewing a contract
//!   (annotations neither needed nor checked).
//! - [`import`]: the official JSON turned into (a) span-level chat examples, one per span, whose
//!   answer names the checks the span is evidence for, with the previous span as context, and
//!   (b) the document-level evaluation file (text, spans, gold labels).

pub mod documents;
pub mod import;
pub mod official;
pub mod texts;

pub use documents::{
    detect_format, gold_from_official, gold_problem, read_documents, read_gold, EvalDocument,
    GoldFormat, GoldLabel,
};
pub use import::{import, write_imported, Imported};
pub use official::{id_string, read, Annotation, AnnotationSet, Dataset, Document, LabelInfo};
pub use texts::{documents_lines, official_texts, DocumentText, ShapeError};
