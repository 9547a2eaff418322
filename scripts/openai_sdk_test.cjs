// The official OpenAI Node SDK against embedd (scripts/openai_sdk_test.sh
// starts the server, with model minilm-l6-random aliased text-embedding-3-small,
// and sets EMBEDD_OPENAI_BASE).
const test = require("node:test");
const assert = require("node:assert");
const OpenAI = require("openai");

const client = new OpenAI({ baseURL: process.env.EMBEDD_OPENAI_BASE, apiKey: "not-checked", maxRetries: 0 });

function checkModel(m, id) {
  assert.strictEqual(m.id, id);
  assert.strictEqual(m.object, "model");
  assert.strictEqual(m.owned_by, "embedd");
  assert.ok(Number.isInteger(m.created) && m.created > 1.7e9, `created ${m.created} is a Unix time`);
}

test("models.list lists every model and alias", async () => {
  const page = await client.models.list();
  const ids = page.data.map((m) => m.id).sort();
  assert.deepStrictEqual(ids, ["minilm-l6-random", "text-embedding-3-small"]);
  for (const m of page.data) checkModel(m, m.id);
});

test("models.retrieve finds a model by id and by alias", async () => {
  checkModel(await client.models.retrieve("minilm-l6-random"), "minilm-l6-random");
  checkModel(await client.models.retrieve("text-embedding-3-small"), "text-embedding-3-small");
});

test("models.retrieve of an unknown model is a NotFoundError", async () => {
  await assert.rejects(client.models.retrieve("gpt-9"), (err) => {
    assert.ok(err instanceof OpenAI.NotFoundError, `got ${err}`);
    assert.strictEqual(err.status, 404);
    assert.match(err.message, /gpt-9/);
    return true;
  });
});

test("embeddings.create through an alias", async () => {
  const res = await client.embeddings.create({ model: "text-embedding-3-small", input: ["a first text", "a second"] });
  assert.strictEqual(res.data.length, 2);
  for (const [i, d] of res.data.entries()) {
    assert.strictEqual(d.index, i);
    assert.strictEqual(d.embedding.length, 384);
    const norm = Math.hypot(...d.embedding);
    assert.ok(Math.abs(norm - 1) < 1e-3, `vector ${i} has norm ${norm}`);
  }
});
