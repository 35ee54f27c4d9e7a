//! A one-page PDF written by hand, for the tests of PDF input and the fuzz seeds: small, valid,
//! and with the content stream given, so a test can show text any way a PDF can.

/// A one-page PDF (Helvetica, WinAnsi) whose page content stream is `content`, with a correct
/// cross-reference table.
pub fn one_page_pdf(content: &str) -> Vec<u8> {
    pdf_with_stream("", content.as_bytes())
}

/// A one-page PDF showing `lines` one under the other (11 pt Helvetica), as a text PDF of a
/// short contract would.
pub fn text_pdf(lines: &[&str]) -> Vec<u8> {
    let mut content = String::from("BT /F1 11 Tf 14 TL 72 740 Td");
    for l in lines {
        content.push_str(&format!(" ({l}) Tj T*"));
    }
    content.push_str(" ET");
    one_page_pdf(&content)
}

/// [`one_page_pdf`] with the content stream's bytes as given and `filter` in its dictionary
/// (e.g. ` /Filter /FlateDecode`).
pub fn pdf_with_stream(filter: &str, data: &[u8]) -> Vec<u8> {
    let objs: [Vec<u8>; 5] = [
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
         /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_vec(),
        [
            format!("<< /Length {}{filter} >>\nstream\n", data.len()).as_bytes(),
            data,
            b"\nendstream",
        ]
        .concat(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
            .to_vec(),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objs.iter().enumerate() {
        offsets.push(out.len());
        out.extend(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend(o);
        out.extend(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objs.len() + 1).as_bytes());
    for off in offsets {
        out.extend(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objs.len() + 1
        )
        .as_bytes(),
    );
    out
}
