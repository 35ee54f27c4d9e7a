//! What `hone data select` and `hone data draft` share: reading a pool of unlabelled
//! conversations, and putting answers to them in the review queue (as request-log rows, so the
//! review page and `hone data from-feedback` treat them like sampled production answers).

use std::path::Path;

use anyhow::{Context, Result};
use hone_model::chat_template::Message;
use hone_ops::request_log::LogRecord;

/// The conversations of a pool file: one JSON object a line, `{"messages": [...]}` (a trailing
/// assistant turn, if any, is dropped: that is what is to be labelled) or `{"prompt": "..."}`.
pub fn read_pool(path: &Path) -> Result<Vec<Vec<Message>>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), i + 1);
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("{}: not JSON", at()))?;
        let mut msgs = if let Some(p) = v.get("prompt").and_then(|p| p.as_str()) {
            vec![Message::user(p.to_string())]
        } else {
            let arr = v
                .get("messages")
                .and_then(|m| m.as_array())
                .with_context(|| format!("{}: field `messages` (or `prompt`) is missing", at()))?;
            arr.iter()
                .enumerate()
                .map(|(k, m)| {
                    let role = m.get("role").and_then(|r| r.as_str());
                    let content = m.get("content").and_then(|c| c.as_str());
                    match (role, content) {
                        (Some(r), Some(c)) => Ok(Message::new(r, c)),
                        _ => {
                            anyhow::bail!("{}: field `messages[{k}]` needs role and content", at())
                        }
                    }
                })
                .collect::<Result<Vec<_>>>()?
        };
        if msgs.last().is_some_and(|m| m.role == "assistant") {
            msgs.pop();
        }
        anyhow::ensure!(!msgs.is_empty(), "{}: an empty conversation", at());
        out.push(msgs);
    }
    anyhow::ensure!(
        !out.is_empty(),
        "{}: no conversations in the pool",
        path.display()
    );
    Ok(out)
}

/// The last user turn (what a near-duplicate check compares).
pub fn question(msgs: &[Message]) -> String {
    msgs.iter()
        .rev()
        .find(|m| m.role == "user")
        .map(|m| m.content.clone())
        .unwrap_or_default()
}

/// An answer to a pool conversation, to be reviewed.
pub struct PoolAnswer<'a> {
    pub messages: &'a [Message],
    pub answer: String,
    pub output_tokens: u64,
    pub mean_logprob: Option<f64>,
}

/// Logs `answers` as rows of `endpoint` (`select`, `draft`) by `model` and queues every one for
/// review; the review-queue ids' request ids, in order.
pub fn queue(
    store: &dyn hone_ops::Store,
    endpoint: &str,
    model: &str,
    answers: &[PoolAnswer],
) -> Result<Vec<i64>> {
    let now = hone_ops::now_ms();
    let rows: Vec<LogRecord> = answers
        .iter()
        .map(|a| LogRecord {
            id: 0,
            time_ms: now,
            model: model.to_string(),
            version: None,
            endpoint: endpoint.to_string(),
            status: 200,
            caller: Some(endpoint.to_string()),
            input: serde_json::Value::Array(
                a.messages
                    .iter()
                    .map(|m| serde_json::json!({"role": m.role, "content": m.content}))
                    .collect(),
            ),
            output: a.answer.clone(),
            finish: None,
            latency_ms: 0.0,
            prompt_tokens: 0,
            output_tokens: a.output_tokens,
            mean_logprob: a.mean_logprob,
        })
        .collect();
    let ids = store
        .append_requests(&rows)
        .context("cannot log the answers")?;
    store.queue_for_review(&ids)?;
    Ok(ids)
}

/// A review adapter's result on one pool document, to be checked by a person.
pub struct PoolReview<'a> {
    pub doc: &'a hone_review::input::InputDoc,
    pub review: &'a hone_review::DocReview,
}

/// Logs review results as rows of endpoint `review` by `model` (input: the document's id,
/// file name, text and spans; output: the review JSON) and queues every one for review; the
/// rows' ids, in order. An item's confidence is the mean log-probability of its 17 labels.
pub fn queue_review(
    store: &dyn hone_ops::Store,
    model: &str,
    items: &[PoolReview],
) -> Result<Vec<i64>> {
    let now = hone_ops::now_ms();
    let rows = items
        .iter()
        .map(|it| {
            let r = it.review;
            let lp: Vec<f64> = r
                .checks
                .values()
                .map(|c| {
                    let p = match c.label.as_str() {
                        "Entailment" => c.probs.entailment,
                        "Contradiction" => c.probs.contradiction,
                        _ => c.probs.not_mentioned,
                    };
                    p.max(1e-12).ln()
                })
                .collect();
            Ok(LogRecord {
                id: 0,
                time_ms: now,
                model: model.to_string(),
                version: None,
                endpoint: hone_ops::review_doc::ENDPOINT.to_string(),
                status: 200,
                caller: Some("select".to_string()),
                input: hone_ops::review_doc::ReviewInput::new(
                    it.doc.doc_id.clone(),
                    it.doc.source.clone(),
                    it.doc.text.clone(),
                    it.doc.spans.clone(),
                )
                .to_value(),
                output: serde_json::to_string(r)?,
                finish: None,
                latency_ms: r.timing.total_ms,
                prompt_tokens: r.timing.tokens as u64,
                output_tokens: 0,
                mean_logprob: (!lp.is_empty()).then(|| lp.iter().sum::<f64>() / lp.len() as f64),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let ids = store
        .append_requests(&rows)
        .context("cannot log the review results")?;
    store.queue_for_review(&ids)?;
    Ok(ids)
}
