//! Seed inputs, one set per target: small valid inputs that reach deep into each parser, so
//! that mutations of them explore the checks past the first byte. `fuzz/corpus/<target>/`
//! starts from these (`cargo run -p hone-fuzz --example write_seeds`), and the corpus test
//! replays them whatever the corpus holds.

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use hone_review::pdf_fixture::one_page_pdf;

/// The seeds of the target `name` (one of [`crate::TARGETS`]).
pub fn seeds(name: &str) -> Vec<Vec<u8>> {
    match name {
        "gguf" => vec![tiny_gguf()],
        "jsonl" => vec![JSONL.as_bytes().to_vec()],
        "train_toml" => vec![
            TRAIN_TOML.as_bytes().to_vec(),
            TRAIN_TOML_ALL.as_bytes().to_vec(),
        ],
        "openai" => OPENAI.iter().map(|s| s.as_bytes().to_vec()).collect(),
        "contractnli" => vec![CONTRACTNLI.as_bytes().to_vec()],
        "pdf" => {
            vec![
            one_page_pdf("BT /F1 12 Tf 72 720 Td (This Agreement is confidential.) Tj T* (The Recipient \
                 shall return all copies.) ' ET"),
            one_page_pdf("BT /F1 12 Tf 14 TL 72 720 Td [(The Re) -20 (cipient shall not)] TJ 0 -14 Td \
                 (disclose any information.) Tj ET"),
        ]
        }
        other => panic!("no fuzz target `{other}`"),
    }
}

const JSONL: &str = r#"{"messages":[{"role":"system","content":"You review NDAs."},{"role":"user","content":"Is there a term?"},{"role":"assistant","content":"Yes: 2 years."}]}
{"instruction":"Classify the clause.","input":"The Recipient shall not disclose.","output":"confidentiality"}
{"instruction":"Name the governing law.","output":"New York","meta":{"source":"fuzz"}}
{"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"{\"label\": \"ok\", \"evidence\": [1, 2]}"}]}
"#;

const TRAIN_TOML: &str = r#"[model]
base = "smollm2"
[lora]
r = 8
alpha = 16
dropout = 0.05
target_modules = ["q_proj", "v_proj"]
layers = "all"
[optim]
lr = 2e-4
epochs = 2
batch_size = 4
max_seq_len = 256
[data]
train = "train.jsonl"
validation = "val.jsonl"
[output]
dir = "runs/fuzz"
"#;

const TRAIN_TOML_ALL: &str = r#"[model]
base = "smollm2"
quantize = "nf4"
dtype = "bf16"
[lora]
r = 16
alpha = 32
dropout = 0.0
target_modules = "all-linear"
layers = "all"
[optim]
lr = 1e-3
weight_decay = 0.01
warmup_ratio = 0.1
scheduler = "linear"
grad_clip = 0.0
batch_size = 2
grad_accum = 4
epochs = 3
max_seq_len = 512
seed = 7
patience = 0
[train]
fast = true
top_layers = 4
checkpoint_every_epoch = false
log_every = 5
[data]
train = "documents.jsonl"
format = "review"
[output]
dir = "runs/nda"
"#;

const OPENAI: &[&str] = &[
    r#"{"model":"smollm2","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello"}],"max_tokens":32,"temperature":0.7,"top_p":0.9,"seed":1,"stop":["\n\n","END"],"logprobs":true,"top_logprobs":3,"user":"u-1","stream":true,"stream_options":{"include_usage":true}}"#,
    r#"{"model":"nda","messages":[{"role":"user","content":[{"type":"text","text":"Review this."}]}],"response_format":{"type":"json_schema","json_schema":{"name":"r","schema":{"type":"object","properties":{"label":{"enum":["a","b"]}},"required":["label"]}}}}"#,
    r#"{"model":"smollm2","messages":[{"role":"user","content":"List"}],"response_format":{"type":"json_object"},"n":1,"presence_penalty":0,"frequency_penalty":0}"#,
    r#"{"model":"smollm2","prompt":"The Recipient shall","max_tokens":16,"logprobs":2,"echo":false,"stop":"."}"#,
    r#"{"model":"smollm2","prompt":["one"],"temperature":0,"seed":18446744073709551615}"#,
];

const CONTRACTNLI: &str = r#"{"documents":[{"id":1,"file_name":"a.pdf","text":"CONFIDENTIALITY AGREEMENT\nThe Recipient shall keep the Information secret. It may share it with its employees.\n","document_type":"search-pdf","url":"","spans":[[0,25],[26,75],[75,110]],"annotation_sets":[{"annotations":{"nda-1":{"choice":"Entailment","spans":[1]},"nda-2":{"choice":"Contradiction","spans":[2]},"nda-3":{"choice":"NotMentioned","spans":[]}}}]},{"id":"doc-2","file_name":"b.pdf","text":"MUTUAL NDA\n\nEach party shall return all Confidential Information on request.","document_type":"search-pdf","url":"","spans":[[0,10],[10,12],[12,76]],"annotation_sets":[{"annotations":{}}]}],"labels":{"nda-1":{"short_description":"Explicit identification","hypothesis":"All Confidential Information shall be expressly identified by the Disclosing Party."},"nda-2":{"short_description":"Sharing with employees","hypothesis":"Receiving Party may share some Confidential Information with some of Receiving Party's employees."},"nda-3":{"short_description":"Return","hypothesis":"Receiving Party shall destroy or return some Confidential Information upon the termination of Agreement."}}}"#;

/// The smallest llama GGUF that loads whole: one layer, hidden size 8, two heads sharing one
/// K/V head, F32 weights, a 12-token byte-level BPE vocabulary with two merges, and a chat
/// template.
pub fn tiny_gguf() -> Vec<u8> {
    tiny_gguf_with_context(64)
}

/// [`tiny_gguf`] claiming a context of `ctx` positions.
pub fn tiny_gguf_with_context(ctx: u32) -> Vec<u8> {
    const HIDDEN: usize = 8;
    const HEADS: usize = 2;
    const KV: usize = 1;
    const FFN: usize = 16;
    let hd = HIDDEN / HEADS;
    let tokens = [
        "<|im_start|>",
        "<|im_end|>",
        "a",
        "b",
        "c",
        "Ġ",
        "ab",
        "Ġa",
        "x",
        "y",
        "z",
        "\n",
    ];
    let vocab = tokens.len();
    let mut x = 1u32;
    let mut t = |shape: &[usize], name: &str| -> (String, QTensor) {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                ((x >> 16) % 200) as f32 / 1000.0 - 0.1
            })
            .collect();
        // GGUF lists dimensions innermost first; candle's writer takes the row-major shape.
        let t = Tensor::from_vec(v, shape, &Device::Cpu).expect("a seed tensor");
        (
            name.to_string(),
            QTensor::quantize(&t, GgmlDType::F32).expect("F32"),
        )
    };
    let tensors = vec![
        t(&[vocab, HIDDEN], "token_embd.weight"),
        t(&[HIDDEN], "blk.0.attn_norm.weight"),
        t(&[HEADS * hd, HIDDEN], "blk.0.attn_q.weight"),
        t(&[KV * hd, HIDDEN], "blk.0.attn_k.weight"),
        t(&[KV * hd, HIDDEN], "blk.0.attn_v.weight"),
        t(&[HIDDEN, HEADS * hd], "blk.0.attn_output.weight"),
        t(&[HIDDEN], "blk.0.ffn_norm.weight"),
        t(&[FFN, HIDDEN], "blk.0.ffn_gate.weight"),
        t(&[FFN, HIDDEN], "blk.0.ffn_up.weight"),
        t(&[HIDDEN, FFN], "blk.0.ffn_down.weight"),
        t(&[HIDDEN], "output_norm.weight"),
    ];
    let s = |v: &str| Value::String(v.to_string());
    let md: Vec<(&str, Value)> = vec![
        ("general.architecture", s("llama")),
        ("general.alignment", Value::U32(32)),
        ("llama.block_count", Value::U32(1)),
        ("llama.embedding_length", Value::U32(HIDDEN as u32)),
        ("llama.feed_forward_length", Value::U32(FFN as u32)),
        ("llama.attention.head_count", Value::U32(HEADS as u32)),
        ("llama.attention.head_count_kv", Value::U32(KV as u32)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
        ("llama.rope.freq_base", Value::F32(10000.0)),
        ("llama.rope.dimension_count", Value::U32(hd as u32)),
        ("llama.context_length", Value::U32(ctx)),
        ("llama.vocab_size", Value::U32(vocab as u32)),
        ("tokenizer.ggml.model", s("gpt2")),
        ("tokenizer.ggml.pre", s("smollm")),
        (
            "tokenizer.ggml.tokens",
            Value::Array(tokens.iter().map(|t| s(t)).collect()),
        ),
        (
            "tokenizer.ggml.token_type",
            Value::Array(
                (0..vocab)
                    .map(|i| Value::I32(if i < 2 { 3 } else { 1 }))
                    .collect(),
            ),
        ),
        (
            "tokenizer.ggml.merges",
            Value::Array(vec![s("a b"), s("Ġ a")]),
        ),
        ("tokenizer.ggml.bos_token_id", Value::U32(0)),
        ("tokenizer.ggml.eos_token_id", Value::U32(1)),
        ("tokenizer.ggml.padding_token_id", Value::U32(1)),
        (
            "tokenizer.chat_template",
            s("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"),
        ),
    ];
    let md_refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (*k, v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut out = std::io::Cursor::new(Vec::new());
    gguf_file::write(&mut out, &md_refs, &t_refs).expect("writing the seed GGUF");
    out.into_inner()
}
