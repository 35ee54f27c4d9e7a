//! The review page in a real headless Chromium: a reviewer types the admin key, sees the
//! sampled answers, corrects one by editing it and clicking "wrong", confirms one and marks one
//! critical, by clicks and typing; the store then holds exactly those marks. A wrong key shows
//! an error and loads nothing. Skips (printing why) where Chromium or chromedriver is missing;
//! CI installs both.

#[path = "../../hone-eval/tests/common/browser.rs"]
mod browser;
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use browser::Browser;
use common::{smollm2, Server};
use hone_ops::review::{Mark, ReviewQuery};
use hone_serve::request_log::RequestLogConfig;
use hone_serve::server::ServerConfig;
use serde_json::json;

#[test]
fn a_reviewer_corrects_and_marks_answers_in_the_page() {
    if browser::skip_if_unavailable() {
        return;
    }
    let Some(path) = smollm2() else {
        println!("skipped: smollm2 is not cached (hone model fetch smollm2)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store =
        hone_ops::open_store(Some(dir.path().join("r.db").to_str().unwrap()), None).unwrap();
    let config = ServerConfig {
        admin_key: Some("k3y".into()),
        request_log: Some(RequestLogConfig {
            review_share: 1.0,
            flush_every: Duration::from_millis(20),
            ..RequestLogConfig::default()
        }),
        ..ServerConfig::default()
    };
    let srv = Server::start_with_store(&path, config, &[], Some(Arc::clone(&store)));
    for q in [
        "Is a verbal disclosure confidential?",
        "Who may receive the information?",
        "How long do duties last?",
    ] {
        let (code, _) = srv.post(
            "/v1/chat/completions",
            &json!({"model": "base", "max_tokens": 6, "temperature": 0,
                    "messages": [{"role": "user", "content": q}]}),
        );
        assert_eq!(code, 200);
    }
    let pending = || {
        store
            .review_items(&ReviewQuery {
                pending: Some(true),
                limit: 10,
                ..Default::default()
            })
            .unwrap()
    };
    let t0 = Instant::now();
    while pending().len() < 3 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the queue did not fill"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let b = Browser::launch().unwrap();
    b.goto(&format!("{}/admin/review", srv.url)).unwrap();
    // a wrong key: an error, no answers
    let key = b.find("#key").unwrap();
    b.type_text(&key, "nope").unwrap();
    b.click_css("#load").unwrap();
    let status = b
        .wait_for("#status.error", Duration::from_secs(10))
        .unwrap();
    assert!(
        b.text(&status).unwrap().contains("admin key"),
        "{}",
        b.text(&status).unwrap()
    );
    assert!(b.find_all(".item").unwrap().is_empty());
    // the right key
    b.clear(&key).unwrap();
    b.type_text(&key, "k3y").unwrap();
    b.click_css("#load").unwrap();
    b.wait_for(".item", Duration::from_secs(10)).unwrap();
    assert_eq!(b.find_all(".item").unwrap().len(), 3);
    let ids: Vec<i64> = b
        .execute(
            "return Array.from(document.querySelectorAll('.item')).map(e => Number(e.dataset.id));",
            &[],
        )
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    // the page shows the queue's order
    assert_eq!(ids, pending().iter().map(|i| i.id).collect::<Vec<_>>());

    // 1: edit the answer, mark it wrong
    let answer = b.find(".item:nth-of-type(1) textarea.answer").unwrap();
    b.clear(&answer).unwrap();
    b.type_text(&answer, "Yes, once it is confirmed in writing.")
        .unwrap();
    b.click_css(".item:nth-of-type(1) .mark-wrong").unwrap();
    b.wait_for(".item:nth-of-type(1).done", Duration::from_secs(10))
        .unwrap();
    // 2: an edited answer cannot be marked correct; put it back and confirm it
    let answer2 = b.find(".item:nth-of-type(2) textarea.answer").unwrap();
    let original = b.property(&answer2, "value").unwrap();
    b.type_text(&answer2, " (edited)").unwrap();
    b.click_css(".item:nth-of-type(2) .mark-correct").unwrap();
    let state = b
        .wait_for(".item:nth-of-type(2) .state.error", Duration::from_secs(5))
        .unwrap();
    assert!(b.text(&state).unwrap().contains("keeps its text"));
    b.clear(&answer2).unwrap();
    b.type_text(&answer2, original.as_str().unwrap()).unwrap();
    b.click_css(".item:nth-of-type(2) .mark-correct").unwrap();
    b.wait_for(".item:nth-of-type(2).done", Duration::from_secs(10))
        .unwrap();
    // 3: a note, critical
    let note = b.find(".item:nth-of-type(3) input.note").unwrap();
    b.type_text(&note, "invents a clause").unwrap();
    b.click_css(".item:nth-of-type(3) .mark-critical").unwrap();
    b.wait_for(".item:nth-of-type(3).done", Duration::from_secs(10))
        .unwrap();
    let png = b.full_page_png(2000).unwrap();
    std::fs::write(browser::artifacts_dir().join("review_page.png"), png).unwrap();

    let marked = store
        .review_items(&ReviewQuery {
            pending: Some(false),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    let by_id = |id: i64| marked.iter().find(|i| i.id == id).unwrap();
    assert_eq!(marked.len(), 3);
    assert_eq!(by_id(ids[0]).mark, Some(Mark::Wrong));
    assert_eq!(
        by_id(ids[0]).corrected.as_deref(),
        Some("Yes, once it is confirmed in writing.")
    );
    assert_eq!(
        (by_id(ids[1]).mark, by_id(ids[1]).corrected.as_deref()),
        (Some(Mark::Correct), None)
    );
    assert_eq!(by_id(ids[2]).mark, Some(Mark::Critical));
    assert_eq!(by_id(ids[2]).note.as_deref(), Some("invents a clause"));
}
