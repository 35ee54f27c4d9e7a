//! The OpenAI request bodies the server takes (`/v1/chat/completions`, `/v1/completions`): JSON,
//! then every field's type and range, as the server checks them before anything is queued.

use hone_serve::openai::{chat_request, completion_request, parse_body, Limits};

pub fn run(data: &[u8]) {
    let limits = Limits {
        max_tokens_cap: 4096,
        default_max_tokens: 256,
    };
    let m = match parse_body(data) {
        Ok(m) => m,
        Err(e) => return crate::said(e),
    };
    for r in [chat_request(&m, &limits), completion_request(&m, &limits)] {
        match r {
            Err(e) => crate::said(e),
            Ok(req) => assert!(
                req.max_tokens <= limits.max_tokens_cap,
                "max_tokens {} passed the cap",
                req.max_tokens
            ),
        }
    }
}
