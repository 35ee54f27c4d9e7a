//! The general-knowledge regression set shipped with hone: short questions across topics with
//! reference answers, scored for the base and the fine-tuned model to show what a fine-tune
//! forgot. An answer is right when it contains one of the accepted answers as whole words
//! (case and punctuation ignored).

use serde::{Deserialize, Serialize};

use hone_model::chat_template::Message;

const SET: &str = include_str!("../data/general_knowledge.jsonl");

/// One question.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Question {
    pub id: String,
    pub topic: String,
    pub question: String,
    /// Accepted answers; any one, as whole words, makes the answer right.
    pub answers: Vec<String>,
}

/// The shipped questions.
pub fn questions() -> Vec<Question> {
    SET.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("the shipped regression set is valid JSONL"))
        .collect()
}

/// The messages a candidate is asked (the same for every candidate).
pub fn messages(q: &Question) -> Vec<Message> {
    vec![Message::user(format!(
        "{}\nAnswer in a few words.",
        q.question
    ))]
}

fn words(s: &str) -> Vec<String> {
    s.to_lowercase()
        .split(|c: char| !(c.is_alphanumeric() || c == '₂'))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether `output` contains one of the accepted answers as a run of whole words.
pub fn is_right(q: &Question, output: &str) -> bool {
    let out = words(output);
    q.answers.iter().any(|a| {
        let aw = words(a);
        !aw.is_empty() && out.windows(aw.len()).any(|w| w == aw.as_slice())
    })
}

/// A candidate's regression score.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct RegressionScore {
    pub questions: usize,
    pub right: usize,
    pub accuracy: f64,
    /// (topic, right, total)
    pub by_topic: Vec<(String, usize, usize)>,
    /// Ids of the questions answered wrongly.
    pub wrong: Vec<String>,
}

/// Scores outputs given in the order of `qs`.
pub fn score(qs: &[Question], outputs: &[String]) -> RegressionScore {
    let mut by_topic: Vec<(String, usize, usize)> = Vec::new();
    let mut right = 0;
    let mut wrong = Vec::new();
    for (q, o) in qs.iter().zip(outputs) {
        let ok = is_right(q, o);
        right += ok as usize;
        if !ok {
            wrong.push(q.id.clone());
        }
        match by_topic.iter_mut().find(|t| t.0 == q.topic) {
            Some(t) => {
                t.1 += ok as usize;
                t.2 += 1;
            }
            None => by_topic.push((q.topic.clone(), ok as usize, 1)),
        }
    }
    let n = qs.len().min(outputs.len());
    RegressionScore {
        questions: n,
        right,
        accuracy: if n == 0 { 0.0 } else { right as f64 / n as f64 },
        by_topic,
        wrong,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_set_is_large_and_varied() {
        let qs = questions();
        assert!(qs.len() >= 50, "{}", qs.len());
        let mut topics: Vec<&str> = qs.iter().map(|q| q.topic.as_str()).collect();
        topics.sort();
        topics.dedup();
        assert!(topics.len() >= 8, "{topics:?}");
        let mut ids: Vec<&str> = qs.iter().map(|q| q.id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), qs.len());
        assert!(qs.iter().all(|q| !q.answers.is_empty()));
    }

    #[test]
    fn answers_match_as_whole_words() {
        let q = Question {
            id: "x".into(),
            topic: "t".into(),
            question: "?".into(),
            answers: vec!["Paris".into(), "world wide web".into()],
        };
        assert!(is_right(&q, "The capital is Paris."));
        assert!(is_right(&q, "It stands for World-Wide Web"));
        assert!(!is_right(&q, "Parisian"));
        assert!(!is_right(&q, ""));
        let s = score(&[q.clone(), q], &["paris".into(), "London".into()]);
        assert_eq!((s.right, s.questions), (1, 2));
        assert_eq!(s.accuracy, 0.5);
        assert_eq!(s.by_topic, vec![("t".into(), 1, 2)]);
        assert_eq!(s.wrong, vec!["x".to_string()]);
    }
}
