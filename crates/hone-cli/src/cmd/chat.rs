//! `hone chat`: an interactive conversation in the terminal.

use std::io::{BufRead, Write};

use anyhow::Result;
use clap::Args;
use hone_model::chat_template::Message;
use hone_model::generate;

use super::args::{ModelArgs, SamplingArgs};
use super::generate::{chat_prompt, request};
use super::load_model;

#[derive(Args, Debug)]
pub struct ChatArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long)]
    pub system: Option<String>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

pub fn run(a: ChatArgs) -> Result<()> {
    let m = load_model(&a.model)?;
    let mut history: Vec<Message> = Vec::new();
    if let Some(s) = &a.system {
        history.push(Message {
            role: "system".into(),
            content: s.clone(),
        });
    }
    eprintln!(
        "chatting with {} (empty line or Ctrl-D to quit, /reset to start over)",
        a.model.model.name()
    );
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        eprint!("> ");
        std::io::stderr().flush()?;
        let Some(line) = lines.next() else { break };
        let line = line?;
        let line = line.trim();
        if line.is_empty() {
            break;
        }
        if line == "/reset" {
            history.retain(|m| m.role == "system");
            continue;
        }
        history.push(Message {
            role: "user".into(),
            content: line.to_string(),
        });
        let prompt = chat_prompt(&m, &history)?;
        if prompt.len() >= m.model.max_context() {
            eprintln!("(conversation is longer than the context; /reset to start over)");
            history.pop();
            continue;
        }
        let req = request(&m, prompt, &a.sampling)?;
        let mut out = std::io::stdout().lock();
        let res = generate(&m.model, &m.tokenizer, &[req], |_, d| {
            let _ = out.write_all(d.as_bytes());
            let _ = out.flush();
        })?;
        writeln!(out)?;
        history.push(Message {
            role: "assistant".into(),
            content: res[0].text.clone(),
        });
    }
    Ok(())
}
