#!/usr/bin/python3
"""gen_static_fixture.py: the static-model test folders in models/testdata/static/.

Writes, from numpy default_rng(seed=0) and a 48-token WordPiece vocabulary:
  st/   a sentence-transformers StaticEmbedding folder (modules.json with
        StaticEmbedding and Normalize, 0_StaticEmbedding/model.safetensors with
        embedding.weight F32 [48, 8], tokenizer.json truncating at 6 tokens)
  st16/ the same layout with embedding.weight F16 and no truncation
  m2v/  a Model2Vec folder (model.safetensors with embeddings F16 [12, 8],
        weights F32 [48], mapping I64 [48]; tokenizer.json; config.json with
        normalize false)
  expected.json  texts and the vectors numpy computes for them from the
        safetensors bytes, by the rules of each library (see models/static.go),
        with a tokenizer written here independently of embedd's.

  scripts/gen_static_fixture.py [OUT_DIR]    (default models/testdata/static)
"""
import json
import os
import struct
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["the", "food", "was", "delicious", "a", "tasty", "meal", "deploy", "app", "server",
         "cloud", "fast", "static", "model", "vector", "search", "token", "embed", "run", "test",
         "##s", "##ing", "##ed", "##er", "de", "##li", "##cious", "go", "is", "and", "of", "to",
         ".", ",", "!", "?", "-", "'", "x", "##y", "##z", "e"]
VOCAB = SPECIAL + WORDS + ["[unused0]"]
DIM = 8
TEXTS = [
    "The food was delicious.",
    "A tasty meal!",
    "Deploying the app to the cloud server, fast.",
    "static model vector search tokens embed",
    "The food was delicious and the meal was tasty and fast",  # longer than the st limit of 6
    "xyz zzz qqq food",  # pieces, and words that are [UNK]
    "",
    "qqq",
    "Déploy the APP",  # accent stripped, upper case folded
]


def basic_tokenize(text):
    """BERT's basic tokenizer for the ASCII and Latin-1 text above: strip
    accents, lowercase, split on whitespace and punctuation."""
    import unicodedata
    text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn").lower()
    out, word = [], ""
    for c in text:
        if c.isspace():
            out, word = out + ([word] if word else []), ""
        elif unicodedata.category(c).startswith("P"):
            out, word = out + ([word] if word else []) + [c], ""
        else:
            word += c
    return out + ([word] if word else [])


def wordpiece(word, vocab):
    """Greedy longest-match-first WordPiece; the whole word is [UNK] if any
    part cannot be matched."""
    pieces, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:
            sub = word[start:end] if start == 0 else "##" + word[start:end]
            if sub in vocab:
                pieces.append(vocab[sub])
                break
            end -= 1
        if end == start:
            return [vocab["[UNK]"]]
        start = end
    return pieces


def encode(text, vocab):
    return [i for w in basic_tokenize(text) for i in wordpiece(w, vocab)]


def tokenizer_json(truncation):
    vocab = {t: i for i, t in enumerate(VOCAB)}
    added = [{"id": vocab[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for t in SPECIAL]
    return {
        "version": "1.0",
        "truncation": truncation,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                       "strip_accents": None, "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [],
            "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [vocab["[CLS]"]], "tokens": ["[CLS]"]},
                               "[SEP]": {"id": "[SEP]", "ids": [vocab["[SEP]"]], "tokens": ["[SEP]"]}},
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab},
    }


def write_safetensors(path, tensors):
    header, body = {}, b""
    for name, arr in tensors:
        dtype = {"float32": "F32", "float16": "F16", "int64": "I64"}[arr.dtype.name]
        data = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [len(body), len(body) + len(data)]}
        body += data
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + body)


def dump(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, ensure_ascii=False)
        f.write("\n")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "models", "testdata", "static")
    rng = np.random.default_rng(seed=0)
    vocab = {t: i for i, t in enumerate(VOCAB)}
    n = len(VOCAB)

    # sentence-transformers StaticEmbedding
    st_table = rng.standard_normal((n, DIM)).astype(np.float32)
    os.makedirs(os.path.join(out, "st", "0_StaticEmbedding"), exist_ok=True)
    os.makedirs(os.path.join(out, "st", "1_Normalize"), exist_ok=True)
    write_safetensors(os.path.join(out, "st", "0_StaticEmbedding", "model.safetensors"),
                      [("embedding.weight", st_table)])
    dump(os.path.join(out, "st", "0_StaticEmbedding", "tokenizer.json"),
         tokenizer_json({"direction": "Right", "max_length": 6, "strategy": "LongestFirst", "stride": 0}))
    dump(os.path.join(out, "st", "modules.json"), [
        {"idx": 0, "name": "0", "path": "0_StaticEmbedding", "type": "sentence_transformers.models.StaticEmbedding"},
        {"idx": 1, "name": "1", "path": "1_Normalize", "type": "sentence_transformers.models.Normalize"}])

    # the same with an fp16 table (kept fp16 in memory by embedd) and no truncation
    st16_table = rng.standard_normal((n, DIM)).astype(np.float16)
    os.makedirs(os.path.join(out, "st16", "0_StaticEmbedding"), exist_ok=True)
    write_safetensors(os.path.join(out, "st16", "0_StaticEmbedding", "model.safetensors"),
                      [("embedding.weight", st16_table)])
    dump(os.path.join(out, "st16", "0_StaticEmbedding", "tokenizer.json"), tokenizer_json(None))
    dump(os.path.join(out, "st16", "modules.json"), [
        {"idx": 0, "name": "0", "path": "0_StaticEmbedding", "type": "sentence_transformers.models.StaticEmbedding"},
        {"idx": 1, "name": "1", "path": "1_Normalize", "type": "sentence_transformers.models.Normalize"}])

    # Model2Vec with vocabulary quantisation and per-token weights
    rows = 12
    m2v_table = rng.standard_normal((rows, DIM)).astype(np.float16)
    weights = rng.uniform(0.1, 2.0, n).astype(np.float32)
    mapping = rng.integers(0, rows, n).astype(np.int64)
    os.makedirs(os.path.join(out, "m2v"), exist_ok=True)
    write_safetensors(os.path.join(out, "m2v", "model.safetensors"),
                      [("embeddings", m2v_table), ("mapping", mapping), ("weights", weights)])
    dump(os.path.join(out, "m2v", "tokenizer.json"), tokenizer_json(None))
    dump(os.path.join(out, "m2v", "config.json"), {"model_type": "model2vec", "architectures": ["StaticModel"],
                                                   "hidden_dim": DIM, "normalize": False})

    expected = {"texts": TEXTS, "st": [], "st16": [], "m2v": [], "st_ids": [], "st16_ids": [], "m2v_ids": []}
    unk = vocab["[UNK]"]
    for text in TEXTS:
        ids = encode(text, vocab)
        st_ids = ids[:6]  # tokenizer.json truncation, no special tokens
        v = st_table[st_ids].astype(np.float64).mean(0) if st_ids else np.zeros(DIM)
        norm = np.linalg.norm(v)
        expected["st"].append((v / norm if norm > 0 else v).tolist())
        expected["st_ids"].append(st_ids)
        v = st16_table.astype(np.float64)[ids].mean(0) if ids else np.zeros(DIM)
        norm = np.linalg.norm(v)
        expected["st16"].append((v / norm if norm > 0 else v).tolist())
        expected["st16_ids"].append(ids)
        m_ids = [i for i in ids if i != unk][:512]
        rows_ = m2v_table.astype(np.float64)[mapping[m_ids]] * weights.astype(np.float64)[m_ids, None]
        expected["m2v"].append((rows_.mean(0) if m_ids else np.zeros(DIM)).tolist())
        expected["m2v_ids"].append(m_ids)
    dump(os.path.join(out, "expected.json"), expected)


if __name__ == "__main__":
    main()
