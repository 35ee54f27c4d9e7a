//! Chat templates: SmolLM2's own (from the GGUF), Llama-3 and Mistral style templates written
//! here, assistant spans for loss masking, stop strings, errors.

#[path = "fixtures/tokenizer_common.rs"]
mod common;

use hone_model::chat_template::{ChatTemplate, Message, CHATML_TEMPLATE};
use hone_model::error::Error;
use hone_model::tokenizer::Tokenizer;

const SMOL_DEFAULT_SYSTEM: &str =
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n";

const LLAMA3: &str = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

const MISTRAL: &str = "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}";

fn smollm() -> Option<(
    ChatTemplate,
    Tokenizer,
    std::collections::HashMap<String, candle_core::quantized::gguf_file::Value>,
)> {
    let path = common::test_gguf()?;
    let md = common::gguf_metadata(&path);
    let tok = Tokenizer::from_gguf_metadata(&md).unwrap();
    let t = ChatTemplate::from_gguf_metadata(&md, &tok).unwrap();
    Some((t, tok, md))
}

fn conversation() -> Vec<Message> {
    vec![
        Message::system("You are a careful legal assistant."),
        Message::user("Summarise clause 4."),
        Message::assistant("Clause 4 limits liability to fees paid."),
    ]
}

fn check_spans(text: &str, spans: &[std::ops::Range<usize>], expected: &[&str]) {
    let got: Vec<&str> = spans.iter().map(|r| &text[r.clone()]).collect();
    assert_eq!(got, expected, "spans in {text:?}");
}

#[test]
fn smollm_renders_chatml() {
    let Some((t, _, _)) = smollm() else { return };
    let text = t.render(&conversation(), false).unwrap();
    assert_eq!(
        text,
        "<|im_start|>system\nYou are a careful legal assistant.<|im_end|>\n\
         <|im_start|>user\nSummarise clause 4.<|im_end|>\n\
         <|im_start|>assistant\nClause 4 limits liability to fees paid.<|im_end|>\n"
    );
    // No system message: the template inserts its default one.
    let text = t.render(&[Message::user("Hi")], true).unwrap();
    assert_eq!(
        text,
        format!("{SMOL_DEFAULT_SYSTEM}<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    );
    let text = t.render(&[Message::user("Hi")], false).unwrap();
    assert_eq!(
        text,
        format!("{SMOL_DEFAULT_SYSTEM}<|im_start|>user\nHi<|im_end|>\n")
    );
}

#[test]
fn smollm_spans_cover_assistant_content_and_im_end() {
    let Some((t, tok, _)) = smollm() else { return };
    let (text, spans) = t.render_with_spans(&conversation()).unwrap();
    assert_eq!(text, t.render(&conversation(), false).unwrap());
    check_spans(
        &text,
        &spans,
        &["Clause 4 limits liability to fees paid.<|im_end|>"],
    );

    let msgs = vec![
        Message::user("Q1"),
        Message::assistant("A1 <|im_end|> inside"),
        Message::user("Q2"),
        Message::assistant(""),
        Message::user("Q3"),
        Message::assistant("  spaced answer \n"),
    ];
    let (text, spans) = t.render_with_spans(&msgs).unwrap();
    assert!(text.starts_with(SMOL_DEFAULT_SYSTEM));
    check_spans(
        &text,
        &spans,
        &[
            "A1 <|im_end|> inside<|im_end|>",
            "<|im_end|>",
            "  spaced answer \n<|im_end|>",
        ],
    );
    // The spans start right after "<|im_start|>assistant\n".
    for r in &spans {
        assert!(text[..r.start].ends_with("<|im_start|>assistant\n"));
        assert!(text[r.end..].starts_with('\n'));
    }
    // Token-level: the span boundaries fall on token boundaries of the rendered text.
    let ids = tok.encode(&text, true).unwrap();
    assert_eq!(tok.decode(&ids, false).unwrap(), text);

    // No assistant message: no spans.
    let (_, spans) = t.render_with_spans(&[Message::user("Hi")]).unwrap();
    assert!(spans.is_empty());
}

#[test]
fn smollm_stop_strings() {
    let Some((t, tok, _)) = smollm() else { return };
    let stops = t.stop_strings();
    assert_eq!(stops[0], "<|im_end|>", "{stops:?}");
    assert!(stops.contains(&"<|im_end|>".to_string()));
    assert_eq!(t.stop_token_ids(&tok), vec![2]);
    assert_eq!(t.bos_token(), "<|im_start|>");
    assert_eq!(t.eos_token(), "<|im_end|>");
}

#[test]
fn chatml_default_without_template() {
    let Some((_, tok, mut md)) = smollm() else {
        return;
    };
    md.remove("tokenizer.chat_template");
    let t = ChatTemplate::from_gguf_metadata(&md, &tok).unwrap();
    assert_eq!(t.source(), CHATML_TEMPLATE);
    assert_eq!(
        t.render(&[Message::user("Hi")], true).unwrap(),
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn llama3_style_template() {
    let t = ChatTemplate::new(LLAMA3, "<|begin_of_text|>", "<|end_of_text|>").unwrap();
    let msgs = vec![
        Message::system("Be brief."),
        Message::user("  Hi  "),
        Message::assistant("  Hello there.  \n"),
        Message::user("Bye"),
        Message::assistant("Goodbye."),
    ];
    let text = t.render(&msgs[..2], true).unwrap();
    assert_eq!(
        text,
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>\
         <|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>\
         <|start_header_id|>assistant<|end_header_id|>\n\n"
    );
    let (text, spans) = t.render_with_spans(&msgs).unwrap();
    check_spans(
        &text,
        &spans,
        &["Hello there.<|eot_id|>", "Goodbye.<|eot_id|>"],
    );
    let stops = t.stop_strings();
    assert_eq!(stops[0], "<|eot_id|>", "{stops:?}");
    assert!(stops.contains(&"<|end_of_text|>".to_string()));
}

#[test]
fn mistral_style_template() {
    let t = ChatTemplate::new(MISTRAL, "<s>", "</s>").unwrap();
    let msgs = vec![
        Message::user("Hi"),
        Message::assistant("Hello"),
        Message::user("More"),
        Message::assistant("Sure"),
    ];
    let text = t.render(&msgs, false).unwrap();
    assert_eq!(
        text,
        "<s>[INST] Hi [/INST]Hello</s>[INST] More [/INST]Sure</s>"
    );
    let (text2, spans) = t.render_with_spans(&msgs).unwrap();
    assert_eq!(text2, text);
    check_spans(&text, &spans, &["Hello</s>", "Sure</s>"]);
    assert_eq!(t.stop_strings(), vec!["</s>".to_string()]);
    // raise_exception surfaces as a template error with the template's message.
    let err = t
        .render(&[Message::system("x"), Message::user("Hi")], true)
        .unwrap_err();
    assert!(matches!(err, Error::Template(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("Conversation roles must alternate"),
        "{err}"
    );
}

#[test]
fn hf_features_render() {
    // trim_blocks / lstrip_blocks, loop controls, pycompat string methods, namespace,
    // strftime_now, tojson, tools / documents as none.
    let src = "\
{%- set ns = namespace(n=0) -%}
{% for message in messages %}
    {% if message.role == 'system' %}
        {% continue %}
    {% endif %}
    {% set ns.n = ns.n + 1 %}
[{{ message.role.upper() }}] {{ message.content.strip() }}
    {% if message.content.startswith('STOP') %}
        {% break %}
    {% endif %}
{% endfor %}
{% if tools is not none %}TOOLS{% endif %}
{% if documents %}DOCS{% endif %}
n={{ ns.n }} year={{ strftime_now('%Y') | length }} json={{ {'k': ['v', 1]} | tojson }}
{% if add_generation_prompt %}[ASSISTANT]{% endif %}";
    let t = ChatTemplate::new(src, "", "").unwrap();
    let msgs = vec![
        Message::system("ignored"),
        Message::user("  one  "),
        Message::assistant("STOP here"),
        Message::user("never"),
    ];
    let text = t.render(&msgs, true).unwrap();
    assert_eq!(
        text,
        "[USER] one\n[ASSISTANT] STOP here\nn=2 year=4 json={\"k\": [\"v\", 1]}\n[ASSISTANT]"
    );
}

#[test]
fn broken_template_is_an_error() {
    let err = ChatTemplate::new(
        "{% for m in messages %}\n{{ m.content \n{% endfor %}",
        "",
        "",
    )
    .unwrap_err();
    match &err {
        Error::Template(msg) => {
            eprintln!("broken template: {err}");
            assert!(msg.contains("chat_template:3"), "{msg}")
        }
        other => panic!("expected a template error, got {other:?}"),
    }
    let err = ChatTemplate::new("{% if %}", "", "").unwrap_err();
    assert!(matches!(err, Error::Template(_)));
    // Errors at render time (unknown filter) are template errors too.
    let t = ChatTemplate::new("{{ messages | no_such_filter }}", "", "");
    match t {
        Err(Error::Template(_)) => {}
        Ok(t) => assert!(matches!(t.render(&[], false), Err(Error::Template(_)))),
        Err(e) => panic!("{e:?}"),
    }
}

#[test]
fn from_tokenizer_config_list_and_string() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = serde_json::json!({
        "bos_token": {"content": "<s>", "special": true},
        "eos_token": "</s>",
        "chat_template": [
            {"name": "tool_use", "template": "TOOLS"},
            {"name": "default", "template": MISTRAL},
        ],
    });
    let path = dir.path().join("tokenizer_config.json");
    std::fs::write(&path, cfg.to_string()).unwrap();
    let t = ChatTemplate::from_tokenizer_config(&path).unwrap();
    assert_eq!(t.source(), MISTRAL);
    assert_eq!(
        t.render(&[Message::user("Hi")], true).unwrap(),
        "<s>[INST] Hi [/INST]"
    );
    // A folder works too, and a plain string template.
    let cfg = serde_json::json!({"eos_token": "<|eot_id|>", "chat_template": LLAMA3});
    std::fs::write(&path, cfg.to_string()).unwrap();
    let t = ChatTemplate::from_tokenizer_config(dir.path()).unwrap();
    assert_eq!(t.source(), LLAMA3);
    // No template at all: ChatML.
    std::fs::write(&path, "{}").unwrap();
    let t = ChatTemplate::from_tokenizer_config(&path).unwrap();
    assert_eq!(t.source(), CHATML_TEMPLATE);
    // Missing file: an I/O error naming the path.
    let err = ChatTemplate::from_tokenizer_config(&dir.path().join("nope.json")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
}
