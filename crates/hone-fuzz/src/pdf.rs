//! PDF input to `hone review`: the text layer of every page, reflowed into one document and
//! split into spans, or an error (not a PDF, encrypted, corrupt, no text layer).

use hone_review::input::{read_inputs, ReadOptions};

pub fn run(data: &[u8]) {
    let path = crate::scratch::file("contract.pdf", data);
    match read_inputs(&path, &ReadOptions::default()) {
        Err(e) => crate::said(e),
        Ok(docs) => crate::check_docs(&docs),
    }
}
