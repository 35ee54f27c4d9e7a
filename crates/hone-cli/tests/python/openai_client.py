"""The official `openai` Python client against `hone serve`.

Run by crates/hone-cli/tests/serve_openai.rs:

    python openai_client.py BASE_URL MODEL ADAPTER

BASE_URL is the server's root (http://127.0.0.1:PORT), MODEL the base model's name and
ADAPTER the name of a LoRA adapter the server was started with. Every check runs even when an
earlier one fails; the script prints each result and exits 1 when any failed.
"""

import json
import sys
import traceback

import openai

BASE_URL, MODEL, ADAPTER = sys.argv[1], sys.argv[2], sys.argv[3]

client = openai.OpenAI(
    base_url=BASE_URL.rstrip("/") + "/v1", api_key="x", max_retries=0, timeout=300
)

failures = []


def check(name):
    """Runs the decorated function at once as one named check."""

    def run(fn):
        try:
            fn()
            print(f"ok    {name}", flush=True)
        except Exception:  # noqa: BLE001 - every failure is reported, then the next check runs
            failures.append(name)
            print(f"FAIL  {name}", flush=True)
            traceback.print_exc(file=sys.stdout)
            sys.stdout.flush()
        return fn

    return run


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


NDA_Q = [{"role": "user", "content": "What is a non-disclosure agreement? Answer in one sentence."}]


def check_usage(u, max_completion):
    expect(u is not None, "usage is missing")
    expect(u.prompt_tokens > 0, f"prompt_tokens {u.prompt_tokens}")
    expect(1 <= u.completion_tokens <= max_completion, f"completion_tokens {u.completion_tokens}")
    expect(u.total_tokens == u.prompt_tokens + u.completion_tokens, f"total_tokens {u}")


greedy = {}


@check("chat completion, greedy: content, usage, finish_reason")
def _():
    r = client.chat.completions.create(model=MODEL, messages=NDA_Q, max_tokens=32, temperature=0)
    expect(r.object == "chat.completion", f"object {r.object}")
    expect(r.model == MODEL, f"model {r.model}")
    expect(len(r.choices) == 1, f"{len(r.choices)} choices")
    c = r.choices[0]
    expect(c.message.role == "assistant", f"role {c.message.role}")
    expect(isinstance(c.message.content, str) and c.message.content.strip(), f"content {c.message.content!r}")
    expect(c.finish_reason in ("stop", "length"), f"finish_reason {c.finish_reason}")
    check_usage(r.usage, 32)
    if c.finish_reason == "length":
        expect(r.usage.completion_tokens == 32, f"length finish after {r.usage.completion_tokens} tokens")
    greedy["content"] = c.message.content
    greedy["finish"] = c.finish_reason
    greedy["usage"] = r.usage
    print(f"      answer: {c.message.content!r}")


@check("chat completion, greedy, is deterministic")
def _():
    r = client.chat.completions.create(model=MODEL, messages=NDA_Q, max_tokens=32, temperature=0)
    expect(r.choices[0].message.content == greedy["content"], f"{r.choices[0].message.content!r} != {greedy['content']!r}")


@check("completions.create")
def _():
    r = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=8, temperature=0)
    expect(r.object == "text_completion", f"object {r.object}")
    expect(len(r.choices) == 1, f"{len(r.choices)} choices")
    t = r.choices[0].text
    expect(isinstance(t, str) and t.strip(), f"text {t!r}")
    expect(r.choices[0].finish_reason in ("stop", "length"), f"finish_reason {r.choices[0].finish_reason}")
    check_usage(r.usage, 8)
    print(f"      text: {t!r}")


@check("streamed chat equals the non-streamed greedy answer")
def _():
    stream = client.chat.completions.create(
        model=MODEL, messages=NDA_Q, max_tokens=32, temperature=0, stream=True
    )
    parts, finishes, n = [], [], 0
    for chunk in stream:
        n += 1
        expect(chunk.object == "chat.completion.chunk", f"object {chunk.object}")
        expect(chunk.usage is None, "usage without include_usage")
        for c in chunk.choices:
            if c.delta.content:
                parts.append(c.delta.content)
            if c.finish_reason:
                finishes.append(c.finish_reason)
    text = "".join(parts)
    expect(len(parts) >= 2, f"only {len(parts)} content deltas in {n} chunks")
    expect(text == greedy["content"], f"streamed {text!r} != {greedy['content']!r}")
    expect(finishes == [greedy["finish"]], f"finish reasons {finishes}")


@check("streamed chat with stream_options.include_usage reports usage")
def _():
    stream = client.chat.completions.create(
        model=MODEL,
        messages=NDA_Q,
        max_tokens=32,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    usage = [c.usage for c in chunks if c.usage is not None]
    expect(len(usage) == 1, f"{len(usage)} chunks carry usage")
    last = chunks[-1]
    expect(last.usage is not None and last.choices == [], "usage comes last, in a chunk without choices")
    u, g = usage[0], greedy["usage"]
    expect(
        (u.prompt_tokens, u.completion_tokens, u.total_tokens)
        == (g.prompt_tokens, g.completion_tokens, g.total_tokens),
        f"stream usage {u} != {g}",
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    expect(text == greedy["content"], f"streamed {text!r}")


@check("streamed completion")
def _():
    stream = client.completions.create(
        model=MODEL, prompt="The capital of France is", max_tokens=8, temperature=0, stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    whole = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=8, temperature=0)
    expect(text == whole.choices[0].text, f"{text!r} != {whole.choices[0].text!r}")
    expect(chunks[-1].usage is not None, "no usage chunk")
    expect(chunks[-1].usage.completion_tokens == whole.usage.completion_tokens, "usage differs")


SCHEMA = {
    "type": "object",
    "properties": {
        "party": {"type": "string", "maxLength": 40},
        "term_years": {"type": "integer", "minimum": 0, "maximum": 99},
        "mutual": {"type": "boolean"},
        "kind": {"type": "string", "enum": ["nda", "msa", "employment"]},
        "clauses": {"type": "array", "items": {"type": "string", "maxLength": 30}, "maxItems": 3},
    },
    "required": ["party", "term_years", "mutual", "kind", "clauses"],
    "additionalProperties": False,
}


def validate(doc, schema):
    """The subset of JSON Schema that SCHEMA uses, checked by hand."""
    expect(isinstance(doc, dict), f"not an object: {doc!r}")
    props = schema["properties"]
    for k in schema["required"]:
        expect(k in doc, f"missing required key {k!r} in {doc!r}")
    for k in doc:
        expect(k in props, f"key {k!r} is not in the schema (additionalProperties: false)")
    for k, v in doc.items():
        p = props[k]
        t = p.get("type")
        if t == "string":
            expect(isinstance(v, str), f"{k}: {v!r} is not a string")
            if "maxLength" in p:
                expect(len(v) <= p["maxLength"], f"{k}: longer than {p['maxLength']}")
        elif t == "integer":
            expect(isinstance(v, int) and not isinstance(v, bool), f"{k}: {v!r} is not an integer")
            expect(p["minimum"] <= v <= p["maximum"], f"{k}: {v} out of range")
        elif t == "boolean":
            expect(isinstance(v, bool), f"{k}: {v!r} is not a boolean")
        elif t == "array":
            expect(isinstance(v, list), f"{k}: {v!r} is not an array")
            expect(len(v) <= p["maxItems"], f"{k}: more than {p['maxItems']} items")
            for item in v:
                expect(isinstance(item, str) and len(item) <= p["items"]["maxLength"], f"{k}: item {item!r}")
        if "enum" in p:
            expect(v in p["enum"], f"{k}: {v!r} not in {p['enum']}")


@check("response_format json_schema (strict): output parses and validates")
def _():
    msgs = [
        {"role": "system", "content": "You extract facts from contracts as JSON."},
        {
            "role": "user",
            "content": "Acme Corp and Beta LLC sign a mutual non-disclosure agreement lasting "
            "3 years, with confidentiality and return-of-materials clauses. Extract it.",
        },
    ]
    r = client.chat.completions.create(
        model=MODEL,
        messages=msgs,
        max_tokens=200,
        temperature=0,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "contract", "schema": SCHEMA, "strict": True},
        },
    )
    content = r.choices[0].message.content
    print(f"      json_schema output: {content!r}")
    expect(r.choices[0].finish_reason == "stop", f"finish_reason {r.choices[0].finish_reason}")
    doc = json.loads(content)
    validate(doc, SCHEMA)
    try:  # a second opinion when the library is there
        import jsonschema
    except ImportError:
        return
    jsonschema.validate(doc, SCHEMA)


@check("response_format json_schema with the adapter")
def _():
    r = client.chat.completions.create(
        model=ADAPTER,
        messages=[{"role": "user", "content": "Describe an employment contract."}],
        max_tokens=200,
        temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "contract", "schema": SCHEMA, "strict": True}},
    )
    content = r.choices[0].message.content
    print(f"      adapter json_schema output: {content!r}")
    expect(r.choices[0].finish_reason == "stop", f"finish_reason {r.choices[0].finish_reason}")
    validate(json.loads(content), SCHEMA)


@check("response_format json_object: output parses as an object")
def _():
    r = client.chat.completions.create(
        model=MODEL,
        messages=[
            {
                "role": "user",
                # A prompt the greedy base model closes within max_tokens (others run into
                # long arrays: json_object constrains the syntax, not the length).
                "content": "Output a JSON object with the key \"answer\" holding the capital of France.",
            }
        ],
        max_tokens=120,
        temperature=0,
        response_format={"type": "json_object"},
    )
    content = r.choices[0].message.content
    print(f"      json_object output: {content!r}")
    expect(r.choices[0].finish_reason == "stop", f"finish_reason {r.choices[0].finish_reason}")
    doc = json.loads(content)
    expect(isinstance(doc, dict) and doc, f"not a non-empty object: {doc!r}")


@check("logprobs with top_logprobs=3")
def _():
    r = client.chat.completions.create(
        model=MODEL, messages=NDA_Q, max_tokens=12, temperature=0, logprobs=True, top_logprobs=3
    )
    c = r.choices[0]
    expect(c.logprobs is not None and c.logprobs.content, "no logprobs.content")
    toks = c.logprobs.content
    expect(len(toks) == r.usage.completion_tokens, f"{len(toks)} entries for {r.usage.completion_tokens} tokens")
    for i, t in enumerate(toks):
        expect(t.logprob <= 0.0, f"token {i}: logprob {t.logprob} > 0")
        expect(len(t.top_logprobs) == 3, f"token {i}: {len(t.top_logprobs)} alternatives")
        lps = [a.logprob for a in t.top_logprobs]
        expect(all(lp <= 0.0 for lp in lps), f"token {i}: alternatives {lps}")
        expect(lps == sorted(lps, reverse=True), f"token {i}: alternatives not best first: {lps}")
        # Greedy: the chosen token is the best one.
        expect(abs(lps[0] - t.logprob) < 1e-4, f"token {i}: best {lps[0]} != chosen {t.logprob}")
        expect(t.top_logprobs[0].token == t.token, f"token {i}: best {t.top_logprobs[0].token!r} != chosen {t.token!r}")
        expect(t.bytes == list(t.token.encode()), f"token {i}: bytes {t.bytes}")
    joined = "".join(t.token for t in toks)
    expect(joined == c.message.content, f"tokens {joined!r} != content {c.message.content!r}")
    expect(greedy["content"].startswith(c.message.content), "logprobs changed the greedy answer")


@check("models.list includes the base and the adapter")
def _():
    ids = [m.id for m in client.models.list()]
    expect(MODEL in ids, f"{MODEL} not in {ids}")
    expect(ADAPTER in ids, f"{ADAPTER} not in {ids}")


@check("the adapter changes the greedy answer")
def _():
    prompts = [
        "What is a non-disclosure agreement? Answer in one sentence.",
        "Name one duty of the receiving party.",
        "Write the title of a contract.",
    ]
    differ = 0
    for p in prompts:
        msgs = [{"role": "user", "content": p}]
        b = client.chat.completions.create(model=MODEL, messages=msgs, max_tokens=16, temperature=0)
        a = client.chat.completions.create(model=ADAPTER, messages=msgs, max_tokens=16, temperature=0)
        expect(a.model == ADAPTER, f"adapter response names {a.model}")
        expect(a.choices[0].message.content.strip() != "" or a.choices[0].finish_reason == "stop", "empty adapter answer")
        print(f"      base {b.choices[0].message.content!r}\n      nda  {a.choices[0].message.content!r}")
        differ += b.choices[0].message.content != a.choices[0].message.content
    expect(differ >= 1, "the adapter gave the base model's answer to every prompt")


def expect_error(cls, status, param, **kw):
    args = {"model": MODEL, "messages": NDA_Q, "max_tokens": 8}
    args.update(kw)
    try:
        client.chat.completions.create(**args)
    except cls as e:
        expect(e.status_code == status, f"status {e.status_code}")
        expect(isinstance(e.body, dict) and e.body.get("message"), f"body {e.body!r}")
        if param is not None:
            expect(e.param == param, f"param {e.param!r} != {param!r} (body {e.body!r})")
        return e
    raise AssertionError(f"{kw} did not raise {cls.__name__}")


@check("unknown model raises NotFoundError")
def _():
    e = expect_error(openai.NotFoundError, 404, None, model="no-such-adapter")
    expect(e.code == "model_not_found", f"code {e.code!r}")


@check("max_tokens=0 raises BadRequestError naming max_tokens")
def _():
    expect_error(openai.BadRequestError, 400, "max_tokens", max_tokens=0)


@check("temperature=5 raises BadRequestError naming temperature")
def _():
    expect_error(openai.BadRequestError, 400, "temperature", temperature=5)


@check("n=2 raises BadRequestError naming n")
def _():
    expect_error(openai.BadRequestError, 400, "n", n=2)


@check("completions with an unknown model raises NotFoundError")
def _():
    try:
        client.completions.create(model="no-such-adapter", prompt="Hi", max_tokens=4)
    except openai.NotFoundError:
        return
    raise AssertionError("no NotFoundError")


print(f"openai {openai.__version__}: {len(failures)} failed")
if failures:
    for f in failures:
        print(f"  failed: {f}")
    sys.exit(1)
