//! JSONL training examples: every line through `parse_example` (chat, instruction and
//! completion shapes), then the whole file through `read_examples`, as `hone data validate`
//! and `hone train` read it.

use hone_data::jsonl::{parse_example, read_examples, LineReader};

pub fn run(data: &[u8]) {
    let mut lines = LineReader::new(std::io::Cursor::new(data));
    while let Ok(Some((_, line))) = lines.next_line() {
        if let Err(problems) = parse_example(line) {
            assert!(!problems.is_empty(), "a refused line with no problem named");
        }
    }
    let path = crate::scratch::file("examples.jsonl", data);
    if let Err(e) = read_examples(&path) {
        crate::said(e);
    }
}
