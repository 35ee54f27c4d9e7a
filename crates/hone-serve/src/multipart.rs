//! `multipart/form-data` bodies (RFC 7578), read from memory: the server has the whole body
//! before a handler runs (`server::read_body`), so the parts are slices of it. Each part's
//! field name, file name and content type come from its headers; nothing is decoded further
//! (`Content-Transfer-Encoding` is deprecated for form data and not honoured).

/// Parts in one form at most.
pub const MAX_PARTS: usize = 16;

/// Bytes of one part's headers at most.
const MAX_HEADER_BYTES: usize = 8 << 10;

/// One part of a form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part<'a> {
    /// The field name (`name` of its `Content-Disposition`).
    pub name: String,
    /// The file name, for a file field.
    pub filename: Option<String>,
    /// Its `Content-Type`, lower case without parameters.
    pub content_type: Option<String>,
    pub data: &'a [u8],
}

/// The `boundary` parameter of a `multipart/form-data` content type (quoted or not), or why
/// there is none.
pub fn boundary(content_type: &str) -> Result<String, String> {
    let mut it = content_type.split(';');
    let kind = it.next().unwrap_or("").trim();
    if !kind.eq_ignore_ascii_case("multipart/form-data") {
        return Err(format!("`{kind}` is not multipart/form-data"));
    }
    for p in it {
        if let Some((k, v)) = p.split_once('=') {
            if k.trim().eq_ignore_ascii_case("boundary") {
                let v = v.trim().trim_matches('"');
                if v.is_empty() || v.len() > 70 {
                    return Err("the multipart boundary must have 1 to 70 characters".into());
                }
                return Ok(v.to_string());
            }
        }
    }
    Err("the multipart/form-data content type has no boundary parameter".into())
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > hay.len() || needle.is_empty() {
        return None;
    }
    let first = needle[0];
    let mut i = from;
    while i + needle.len() <= hay.len() {
        match hay[i..=hay.len() - needle.len()]
            .iter()
            .position(|&b| b == first)
        {
            None => return None,
            Some(k) => {
                let at = i + k;
                if &hay[at..at + needle.len()] == needle {
                    return Some(at);
                }
                i = at + 1;
            }
        }
    }
    None
}

/// A header's parameter (`name="file"`), unquoted.
fn param(value: &str, key: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case(key).then(|| {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            v.replace("\\\"", "\"")
        })
    })
}

/// The parts of a form whose body is `body` and boundary `boundary`, or what is wrong with it.
pub fn parse<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Part<'a>>, String> {
    let delim = format!("--{boundary}");
    let next_delim = format!("\r\n--{boundary}");
    let Some(start) = find(body, delim.as_bytes(), 0) else {
        return Err("the multipart body has no part (its boundary does not occur)".into());
    };
    let mut at = start + delim.len();
    let mut parts = Vec::new();
    loop {
        if body[at..].starts_with(b"--") {
            return Ok(parts);
        }
        // transport padding, then the line break that ends the delimiter line
        while at < body.len() && matches!(body[at], b' ' | b'\t') {
            at += 1;
        }
        if !body[at..].starts_with(b"\r\n") {
            return Err("the multipart body is malformed (a boundary line does not end)".into());
        }
        at += 2;
        let head_end = find(body, b"\r\n\r\n", at)
            .filter(|&e| e - at <= MAX_HEADER_BYTES)
            .ok_or("a multipart part's headers do not end (or are over 8 KiB)")?;
        let head = std::str::from_utf8(&body[at..head_end])
            .map_err(|_| "a multipart part's headers are not UTF-8".to_string())?;
        let (mut name, mut filename, mut content_type) = (None, None, None);
        for line in head.split("\r\n") {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let k = k.trim();
            if k.eq_ignore_ascii_case("content-disposition") {
                name = param(v, "name");
                filename = param(v, "filename");
            } else if k.eq_ignore_ascii_case("content-type") {
                content_type = Some(
                    v.split(';')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_ascii_lowercase(),
                );
            }
        }
        let data_start = head_end + 4;
        let data_end = find(body, next_delim.as_bytes(), data_start)
            .ok_or("the multipart body ends inside a part (no closing boundary)")?;
        let name = name.ok_or("a multipart part has no Content-Disposition name")?;
        parts.push(Part {
            name,
            filename,
            content_type,
            data: &body[data_start..data_end],
        });
        if parts.len() > MAX_PARTS {
            return Err(format!(
                "the form has more than {MAX_PARTS} parts; send `file`, `adapter` and the options only"
            ));
        }
        at = data_end + next_delim.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_are_read_from_the_content_type() {
        assert_eq!(
            boundary("multipart/form-data; boundary=abc").unwrap(),
            "abc"
        );
        assert_eq!(
            boundary("Multipart/Form-Data; charset=utf-8; boundary=\"a b\"").unwrap(),
            "a b"
        );
        assert!(boundary("multipart/form-data").is_err());
        assert!(boundary("application/json; boundary=x").is_err());
    }

    #[test]
    fn parts_fields_and_files_are_split() {
        let body = b"preamble\r\n--XY\r\nContent-Disposition: form-data; name=\"adapter\"\r\n\r\nnda\r\n--XY\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.pdf\"\r\nContent-Type: application/PDF\r\n\r\n%PDF-1.4\r\n--X\r\n\r\n--XY--\r\n";
        let parts = parse(body, "XY").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "adapter");
        assert_eq!(parts[0].data, b"nda");
        assert_eq!(parts[0].filename, None);
        assert_eq!(parts[1].name, "file");
        assert_eq!(parts[1].filename.as_deref(), Some("a.pdf"));
        assert_eq!(parts[1].content_type.as_deref(), Some("application/pdf"));
        assert_eq!(parts[1].data, b"%PDF-1.4\r\n--X\r\n");
    }

    #[test]
    fn malformed_forms_are_errors_not_panics() {
        for body in [
            &b""[..],
            b"--XY",
            b"--XY\r\n",
            b"--XY\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nno end",
            b"--XY\r\n\r\n\r\nx\r\n--XY--",
            b"--XYjunk",
            b"--XY\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n",
        ] {
            assert!(
                parse(body, "XY").is_err(),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(parse(b"--XY--\r\n", "XY").unwrap().is_empty());
    }
}
