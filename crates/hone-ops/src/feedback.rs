//! Reviewed answers as training data: an answer marked correct is an example as it stands; one
//! marked wrong or critical is an example with the reviewer's correction (and skipped without
//! one). Each example says where it came from: `id` `feedback-ITEM-request-REQ`, `group` the
//! version that answered, `label` the mark.

use hone_data::Example;
use hone_model::chat_template::Message;

use crate::review::{Mark, ReviewItem};

/// What became of the marked items.
#[derive(Debug, Default, PartialEq)]
pub struct FromFeedback {
    pub examples: Vec<Example>,
    /// Marked wrong or critical with no correction written.
    pub without_correction: usize,
    /// The logged input is neither messages nor a prompt (nothing to train on).
    pub unusable: usize,
}

/// The conversation a logged input was: chat messages, or a prompt as one user message.
fn messages(input: &serde_json::Value) -> Option<Vec<Message>> {
    match input {
        serde_json::Value::String(p) => Some(vec![Message::user(p.clone())]),
        serde_json::Value::Array(a) => a
            .iter()
            .map(|m| {
                let role = m.get("role")?.as_str()?;
                let content = m.get("content")?.as_str()?;
                Some(Message::new(role, content))
            })
            .collect(),
        _ => None,
    }
}

/// Examples from marked review items (pending ones are ignored).
pub fn examples_from(items: &[ReviewItem]) -> FromFeedback {
    let mut out = FromFeedback::default();
    for it in items {
        let Some(mark) = it.mark else { continue };
        let answer = match (mark, &it.corrected) {
            (_, Some(c)) if !c.trim().is_empty() => c.clone(),
            (Mark::Correct, _) => it.output.clone(),
            _ => {
                out.without_correction += 1;
                continue;
            }
        };
        let Some(mut msgs) = messages(&it.input).filter(|m| !m.is_empty()) else {
            out.unusable += 1;
            continue;
        };
        msgs.push(Message::assistant(answer));
        out.examples.push(Example {
            id: Some(format!("feedback-{}-request-{}", it.id, it.request_id)),
            group: Some(it.version.clone().unwrap_or_else(|| it.model.clone())),
            label: Some(mark.as_str().to_string()),
            messages: msgs,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(
        id: i64,
        input: serde_json::Value,
        mark: Option<Mark>,
        corrected: Option<&str>,
    ) -> ReviewItem {
        ReviewItem {
            id,
            request_id: id * 10,
            time_ms: 0,
            model: "nda".into(),
            version: Some("nda@2".into()),
            input,
            output: "model answer".into(),
            mean_logprob: None,
            mark,
            corrected: corrected.map(str::to_string),
            note: None,
            reviewed_ms: None,
        }
    }

    #[test]
    fn marks_become_examples_with_provenance() {
        let chat =
            json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q?"}]);
        let items = vec![
            item(1, chat.clone(), Some(Mark::Correct), None),
            item(2, chat.clone(), Some(Mark::Wrong), Some("right answer")),
            item(
                3,
                json!("Prompt text"),
                Some(Mark::Critical),
                Some("safe answer"),
            ),
            item(4, chat.clone(), Some(Mark::Wrong), None),
            item(5, chat.clone(), None, None),
            item(6, json!(42), Some(Mark::Correct), None),
        ];
        let f = examples_from(&items);
        assert_eq!(
            (f.examples.len(), f.without_correction, f.unusable),
            (3, 1, 1)
        );
        let e = &f.examples;
        assert_eq!(e[0].messages.last().unwrap().content, "model answer");
        assert_eq!(e[1].messages.len(), 3);
        assert_eq!(e[1].messages[2].content, "right answer");
        assert_eq!(e[1].id.as_deref(), Some("feedback-2-request-20"));
        assert_eq!(
            (e[1].group.as_deref(), e[1].label.as_deref()),
            (Some("nda@2"), Some("wrong"))
        );
        assert_eq!(e[2].messages[0].content, "Prompt text");
        assert_eq!(e[2].messages[1].content, "safe answer");
    }
}
