//! JSONL training examples: every line through `parse_example` (chat, instruction and
//! completion shapes), then the whole file through `read_examples`, as `hone data validate`
//! and `hone train` read it.

use hone_data::jsonl::{parse_example, read_examples, Line, LineReader};

pub fn run(data: &[u8]) {
    // A small line limit here, so that the limit's path is fuzzed too.
    let mut lines = LineReader::new(std::io::Cursor::new(data)).with_max_line(512);
    while let Ok(Some((_, line))) = lines.next_line() {
        let Line::Text(line) = line else { continue };
        if let Err(problems) = parse_example(line) {
            assert!(!problems.is_empty(), "a refused line with no problem named");
        }
    }
    let path = crate::scratch::file("examples.jsonl", data);
    if let Err(e) = read_examples(&path) {
        crate::said(e);
    }
}
