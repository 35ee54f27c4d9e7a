//! `hone generate`: one prompt, the completion on stdout.

use std::io::Write;

use anyhow::Result;
use clap::Args;
use hone_model::chat_template::Message;
use hone_model::{generate, GenRequest, LoadedModel};

use super::args::{ModelArgs, SamplingArgs};
use super::{load_model, sampling};

#[derive(Args, Debug)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The user message (or, with --raw, the whole prompt).
    #[arg(long, short)]
    pub prompt: String,
    /// A system message.
    #[arg(long)]
    pub system: Option<String>,
    /// Send the prompt as is, without the chat template.
    #[arg(long)]
    pub raw: bool,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Print the completion as it is generated.
    #[arg(long)]
    pub stream: bool,
}

/// Token ids of a chat (template applied, generation prompt added).
pub fn chat_prompt(m: &LoadedModel, messages: &[Message]) -> Result<Vec<u32>> {
    let text = m.template.render(messages, true)?;
    Ok(m.tokenizer.encode(&text, true)?)
}

pub fn request(m: &LoadedModel, prompt: Vec<u32>, a: &SamplingArgs) -> Result<GenRequest> {
    let mut stop_tokens = m.template.stop_token_ids(&m.tokenizer);
    if let Some(e) = m.tokenizer.eos_id() {
        if !stop_tokens.contains(&e) {
            stop_tokens.push(e);
        }
    }
    Ok(GenRequest {
        prompt,
        max_tokens: a.max_tokens,
        sampling: sampling(a)?,
        stop_strings: a.stop.clone(),
        stop_tokens,
    })
}

pub fn run(a: GenerateArgs) -> Result<()> {
    let m = load_model(&a.model)?;
    let prompt = if a.raw {
        m.tokenizer.encode(&a.prompt, false)?
    } else {
        let mut msgs = Vec::new();
        if let Some(s) = &a.system {
            msgs.push(Message {
                role: "system".into(),
                content: s.clone(),
            });
        }
        msgs.push(Message {
            role: "user".into(),
            content: a.prompt.clone(),
        });
        chat_prompt(&m, &msgs)?
    };
    let req = request(&m, prompt, &a.sampling)?;
    let mut out = std::io::stdout().lock();
    let stream = a.stream;
    let res = generate(&m.model, &m.tokenizer, &[req], |_, delta| {
        if stream {
            let _ = out.write_all(delta.as_bytes());
            let _ = out.flush();
        }
    })?;
    if !stream {
        out.write_all(res[0].text.as_bytes())?;
    }
    out.write_all(b"\n")?;
    Ok(())
}
