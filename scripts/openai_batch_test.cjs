// The official OpenAI Node SDK's Files and Batches API against embedd
// (scripts/openai_sdk_test.sh starts the server, with model minilm-l6-random
// aliased text-embedding-3-small, and sets EMBEDD_OPENAI_BASE): upload a batch
// input file, create a batch, poll it until it ends, download its output, and
// check every vector against /v1/embeddings for the same request body (float
// or base64).
const test = require("node:test");
const assert = require("node:assert");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const OpenAI = require("openai");

// Node 18 (Debian 12's) has File in node:buffer only; the SDK's uploads want
// it global, as Node 20 has it.
globalThis.File ??= require("node:buffer").File;

const client = new OpenAI({ baseURL: process.env.EMBEDD_OPENAI_BASE, apiKey: "not-checked", maxRetries: 0 });

const bodies = [];
for (let i = 0; i < 24; i++) {
  const input = i % 3 === 0 ? [`batch text ${i}, the first`, `batch text ${i}, the second`] : `batch text number ${i}`;
  const body = { model: i % 2 ? "text-embedding-3-small" : "minilm-l6-random", input, encoding_format: i % 6 === 5 ? "base64" : "float" };
  if (i % 4 === 1) body.dimensions = 64;
  bodies.push(body);
}

test("files.create, batches.create, batches.retrieve, files.content: vectors equal embeddings.create", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "embedd-batch-"));
  const input = path.join(dir, "requests.jsonl");
  fs.writeFileSync(input, bodies.map((body, i) => JSON.stringify({ custom_id: `req-${i}`, method: "POST", url: "/v1/embeddings", body })).join("\n") + "\n");
  const file = await client.files.create({ file: fs.createReadStream(input), purpose: "batch" });
  assert.match(file.id, /^file-/);
  assert.strictEqual(file.purpose, "batch");
  assert.strictEqual(file.bytes, fs.statSync(input).size);

  let batch = await client.batches.create({ input_file_id: file.id, endpoint: "/v1/embeddings", completion_window: "24h", metadata: { from: "sdk" } });
  assert.strictEqual(batch.object, "batch");
  assert.strictEqual(batch.input_file_id, file.id);
  for (const start = Date.now(); !["completed", "failed", "cancelled", "expired"].includes(batch.status); ) {
    assert.ok(Date.now() - start < 120000, `batch still ${batch.status} after two minutes`);
    await new Promise((r) => setTimeout(r, 100));
    batch = await client.batches.retrieve(batch.id);
  }
  assert.strictEqual(batch.status, "completed", JSON.stringify(batch));
  assert.deepStrictEqual(batch.request_counts, { total: bodies.length, completed: bodies.length, failed: 0 });
  assert.deepStrictEqual(batch.metadata, { from: "sdk" });
  assert.strictEqual(batch.error_file_id, null);

  const listed = [];
  for await (const b of client.batches.list({ limit: 10 })) listed.push(b.id);
  assert.ok(listed.includes(batch.id), `batches.list ${listed}`);
  assert.strictEqual((await client.files.retrieve(batch.output_file_id)).purpose, "batch_output");

  const text = await (await client.files.content(batch.output_file_id)).text();
  const lines = text.trim().split("\n").map((l) => JSON.parse(l));
  assert.deepStrictEqual(lines.map((l) => l.custom_id), bodies.map((_, i) => `req-${i}`));
  for (const line of lines) {
    assert.strictEqual(line.response.status_code, 200);
    assert.strictEqual(line.error, null);
    const body = bodies[Number(line.custom_id.slice(4))];
    const direct = await client.embeddings.create(body);
    assert.strictEqual(line.response.body.data.length, direct.data.length);
    for (const [i, d] of line.response.body.data.entries()) {
      assert.strictEqual(d.index, i);
      // base64 requests get base64 strings (the SDK returns them as they
      // came when the request names the format), the others arrays.
      assert.strictEqual(typeof d.embedding, body.encoding_format === "base64" ? "string" : "object", `${line.custom_id}[${i}]`);
      assert.deepStrictEqual(d.embedding, direct.data[i].embedding, `${line.custom_id}[${i}]`);
    }
  }
  fs.rmSync(dir, { recursive: true });
});

test("a batch naming an unknown model fails validation with OpenAI's errors", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "embedd-batch-"));
  const input = path.join(dir, "bad.jsonl");
  fs.writeFileSync(input, JSON.stringify({ custom_id: "x", method: "POST", url: "/v1/embeddings", body: { model: "gpt-9", input: "a" } }) + "\n");
  const file = await client.files.create({ file: fs.createReadStream(input), purpose: "batch" });
  let batch = await client.batches.create({ input_file_id: file.id, endpoint: "/v1/embeddings", completion_window: "24h" });
  for (const start = Date.now(); batch.status === "validating"; ) {
    assert.ok(Date.now() - start < 60000, "still validating after a minute");
    await new Promise((r) => setTimeout(r, 50));
    batch = await client.batches.retrieve(batch.id);
  }
  assert.strictEqual(batch.status, "failed");
  assert.strictEqual(batch.errors.data[0].code, "model_not_found");
  assert.strictEqual(batch.errors.data[0].line, 1);
  await assert.rejects(client.batches.retrieve("batch_unknown"), (err) => err instanceof OpenAI.NotFoundError);
  fs.rmSync(dir, { recursive: true });
});
