//! ContractNLI's official JSON: the dataset reader, the import into span examples and
//! evaluation documents (`hone data import contractnli`), the gold reader of `hone eval
//! contractnli`, and `hone review` reading the same file as input documents.

use hone_data::contractnli::{documents, import, official};
use hone_review::input::{read_inputs, ReadOptions};

pub fn run(data: &[u8]) {
    let path = crate::scratch::file("contractnli.json", data);
    match official::read(&path) {
        Err(e) => crate::said(e),
        Ok(ds) => {
            if let Err(e) = import::import(&ds, &path) {
                crate::said(e);
            }
            if let Err(e) = documents::gold_from_official(&ds, &path) {
                crate::said(e);
            }
        }
    }
    if let Err(e) = documents::read_gold(&path) {
        crate::said(e);
    }
    match read_inputs(&path, &ReadOptions::default()) {
        Err(e) => crate::said(e),
        Ok(docs) => crate::check_docs(&docs),
    }
}
