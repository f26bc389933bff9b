"""The official openai client, unchanged, talking to tersify's compressing gateway.

Start the gateway in front of any OpenAI-compatible LLM first, e.g.

    OPENAI_API_KEY=sk-... tersify serve --upstream https://api.openai.com/v1 \
        --upstream-key-env OPENAI_API_KEY --port 8080

then run this file. ``extra_body={"tersify": {...}}`` sets this request's budget; the
compression's figures come back in the ``X-Tersify-*`` headers.
"""

from openai import OpenAI

client = OpenAI(base_url="http://127.0.0.1:8080/v1", api_key="the gateway's token, if any")
documents = "\n\n".join(f"Document {i}: ..." for i in range(10))
raw = client.chat.completions.with_raw_response.create(
    model="gpt-4o-mini",
    messages=[
        {"role": "system", "content": "Answer from the documents."},
        {"role": "user", "content": documents + "\n\nWhich document mentions the archive?"},
    ],
    extra_body={"tersify": {"rate": 0.3}},
)
print(raw.headers["x-tersify-origin-tokens"], "->", raw.headers["x-tersify-compressed-tokens"])
print(raw.parse().choices[0].message.content)

stream = client.chat.completions.create(  # streaming passes through chunk by chunk
    model="gpt-4o-mini",
    messages=[{"role": "user", "content": documents + "\n\nSummarise them."}],
    stream=True,
)
for chunk in stream:
    if chunk.choices:
        print(chunk.choices[0].delta.content or "", end="", flush=True)
