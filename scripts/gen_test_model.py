#!/usr/bin/python3
"""Generate a stand-in for sentence-transformers/all-MiniLM-L6-v2 with random weights.

No pretrained model can be downloaded where embedd's tests and benchmarks run, so
they use the model this script writes: a BERT encoder with all-MiniLM-L6-v2's exact
shape (6 layers, hidden 384, 12 heads, FFN 1536, vocab 30522, 512 positions) and
random weights drawn like BERT's initialiser. Its vectors mean nothing, but it costs
exactly what the real model costs to run.

The ONNX graph is laid out like the Hugging Face / PyTorch export of BertModel
(Gather embeddings + LayerNormalization; per layer separate Q/K/V MatMul+Add,
Reshape/Transpose to heads, MatMul, Div by sqrt(head_dim), additive mask
(1 - mask) * -10000 from Unsqueeze/Unsqueeze/Cast/Sub/Mul, Softmax, MatMul,
Transpose/Reshape, output MatMul+Add, residual Add + LayerNormalization, FFN
MatMul+Add, erf GELU as Div/Erf/Add/Mul/Mul, MatMul+Add, residual Add +
LayerNormalization), so ONNX Runtime's graph optimiser treats it as it treats a
real export. Opset 17 by default, IR version 8, one file (no external data).

What ONNX Runtime 1.29's own optimiser (session option graph_optimization_level
>= ORT_ENABLE_EXTENDED, CPU) fuses, as measured on this script's output:
  --opset 17 (default): BiasGelu x6, Div folded into FusedMatMul x6.
      No Attention: its C++ AttentionFusion only matches the mask path built from
      Unsqueeze-1/11 and Cast-9, and opset >= 13 has Unsqueeze-13 / Cast-13.
  --opset 12: LayerNorm written out and fused back (LayerNormFusion), Attention x6,
      BiasGelu x6 -- the older-export layout that fusion was written for.
  Neither: SkipLayerNormalization (the runtime fusion wants every dim but batch
      static, and seq is symbolic) or EmbedLayerNormalization. Real HF exports with
      dynamic axes have the same limits; onnxruntime.transformers.optimizer (offline)
      is the tool that fuses those.

OUT_DIR receives a sentence-transformers style folder:
  model.onnx, tokenizer.json, NOTICE, config.json, modules.json,
  sentence_bert_config.json, 1_Pooling/config.json, 2_Normalize/

Usage:
  scripts/gen_test_model.py OUT_DIR [--seed 0] [--layers 6] [--hidden 384]
      [--heads 12] [--ffn 1536] [--max-positions 512]
      [--pooling mean|cls|lasttoken] [--dtype fp32|fp16] [--opset 12..17]
      [--tokenizer PATH] [--verify]

--verify runs the written graph on a small padded batch with a numpy interpreter
(and with onnx.reference.ReferenceEvaluator where the installed onnx has it, >= 1.13),
compares it with an independent numpy BERT forward pass, and checks that real
tokens' states do not depend on padding.

Only numpy and onnx are needed (Debian: python3-numpy, python3-onnx).
Exit status: 0 ok, 1 verification or validation failed, 2 bad arguments.
"""

import argparse
import hashlib
import json
import math
import os
import sys
import time

import numpy as np

try:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError:  # pragma: no cover - depends on the host
    sys.stderr.write("gen_test_model.py: the onnx Python package is required "
                     "(Debian: apt-get install python3-onnx; run with /usr/bin/python3)\n")
    sys.exit(2)

PRODUCER_NAME = "embedd gen_test_model.py"
PRODUCER_VERSION = "1"
DEFAULT_OPSET = 17
IR_VERSION = 8  # what onnx 1.12 writes for opsets <= 17; well within what ONNX Runtime 1.29 loads

VOCAB_SIZE = 30522  # the all-MiniLM-L6-v2 (bert-base-uncased) WordPiece vocabulary
TYPE_VOCAB_SIZE = 2
LAYER_NORM_EPS = 1e-12
INIT_STD = 0.02
MASK_FILTER_VALUE = -10000.0  # (1 - mask) * -10000, as classic HF BERT exports do
DEFAULT_MAX_SEQ_LENGTH = 256  # all-MiniLM-L6-v2's sentence_bert_config.json

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_TOKENIZER = os.path.join(REPO_ROOT, "models", "tokenizer", "testdata", "all-minilm-l6-v2.json")


def fail_usage(msg):
    sys.stderr.write("gen_test_model.py: error: %s\n" % msg)
    sys.exit(2)


# ---------------------------------------------------------------------------
# Arguments


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="gen_test_model.py",
        description="Write a random-weight BERT encoder shaped exactly like "
                    "sentence-transformers/all-MiniLM-L6-v2, as a sentence-transformers folder.")
    p.add_argument("out_dir", metavar="OUT_DIR", help="output folder (created if missing)")
    p.add_argument("--seed", type=int, default=0, help="numpy default_rng seed (default 0)")
    p.add_argument("--layers", type=int, default=6, help="encoder layers (default 6)")
    p.add_argument("--hidden", type=int, default=384, help="hidden size (default 384)")
    p.add_argument("--heads", type=int, default=12, help="attention heads (default 12)")
    p.add_argument("--ffn", type=int, default=1536, help="FFN intermediate size (default 1536)")
    p.add_argument("--max-positions", type=int, default=512, dest="max_positions",
                   help="position embeddings (default 512)")
    p.add_argument("--pooling", choices=("mean", "cls", "lasttoken"), default="mean",
                   help="pooling written to 1_Pooling/config.json (default mean)")
    p.add_argument("--dtype", choices=("fp32", "fp16"), default="fp32",
                   help="weight and compute type; graph I/O stays int64 in, float32 out (default fp32)")
    p.add_argument("--opset", type=int, choices=range(12, 18), default=DEFAULT_OPSET, metavar="{12..17}",
                   help="ONNX opset (default 17: standard LayerNormalization). Below 17 LayerNorm is "
                        "written out (ReduceMean/Sub/Pow/.../Add) and below 13 Unsqueeze takes axes as "
                        "an attribute, like older HF exports; ONNX Runtime 1.29 fuses Attention only at 12")
    p.add_argument("--tokenizer", default=DEFAULT_TOKENIZER,
                   help="tokenizer.json to copy (default: models/tokenizer/testdata/all-minilm-l6-v2.json)")
    p.add_argument("--verify", action="store_true",
                   help="also run the graph on a small padded batch and compare with a numpy BERT")
    a = p.parse_args(argv)

    for flag, val, lo in (("--layers", a.layers, 1), ("--hidden", a.hidden, 1), ("--heads", a.heads, 1),
                          ("--ffn", a.ffn, 1), ("--max-positions", a.max_positions, 2)):
        if val < lo:
            fail_usage("%s %d: must be at least %d" % (flag, val, lo))
    if a.hidden % a.heads != 0:
        fail_usage("--hidden %d is not divisible by --heads %d" % (a.hidden, a.heads))
    if a.seed < 0:
        fail_usage("--seed %d: must be >= 0" % a.seed)
    if not os.path.isfile(a.tokenizer):
        fail_usage("--tokenizer %s: no such file" % a.tokenizer)
    if os.path.exists(a.out_dir) and not os.path.isdir(a.out_dir):
        fail_usage("OUT_DIR %s exists and is not a folder" % a.out_dir)
    return a


# ---------------------------------------------------------------------------
# Weights


def make_weights(cfg):
    """BERT-style init: N(0, 0.02) matrices and embeddings, zero biases, LayerNorm 1/0.

    Drawn as float32 in a fixed order from default_rng(seed), so a given seed and
    shape always give the same bits. MatMul weights are stored [in, out], as the
    PyTorch exporter writes nn.Linear.
    """
    rng = np.random.default_rng(cfg["seed"])
    H, F = cfg["hidden"], cfg["ffn"]

    def normal(*shape):
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(INIT_STD)).astype(np.float32)

    def zeros(n):
        return np.zeros((n,), np.float32)

    def ones(n):
        return np.ones((n,), np.float32)

    w = {}
    w["embeddings.word_embeddings.weight"] = normal(VOCAB_SIZE, H)
    w["embeddings.position_embeddings.weight"] = normal(cfg["max_positions"], H)
    w["embeddings.token_type_embeddings.weight"] = normal(TYPE_VOCAB_SIZE, H)
    w["embeddings.LayerNorm.weight"] = ones(H)
    w["embeddings.LayerNorm.bias"] = zeros(H)
    for i in range(cfg["layers"]):
        p = "encoder.layer.%d." % i
        for name in ("query", "key", "value"):
            w[p + "attention.self.%s.weight" % name] = normal(H, H)
            w[p + "attention.self.%s.bias" % name] = zeros(H)
        w[p + "attention.output.dense.weight"] = normal(H, H)
        w[p + "attention.output.dense.bias"] = zeros(H)
        w[p + "attention.output.LayerNorm.weight"] = ones(H)
        w[p + "attention.output.LayerNorm.bias"] = zeros(H)
        w[p + "intermediate.dense.weight"] = normal(H, F)
        w[p + "intermediate.dense.bias"] = zeros(F)
        w[p + "output.dense.weight"] = normal(F, H)
        w[p + "output.dense.bias"] = zeros(H)
        w[p + "output.LayerNorm.weight"] = ones(H)
        w[p + "output.LayerNorm.bias"] = zeros(H)
    if cfg["dtype"] == "fp16":
        w = {k: v.astype(np.float16) for k, v in w.items()}
    return w


# ---------------------------------------------------------------------------
# Graph


class GraphBuilder:
    def __init__(self, float_type):
        self.nodes = []
        self.inits = []
        self.init_names = set()
        self.float_type = float_type  # TensorProto.FLOAT or FLOAT16
        self.np_float = np.float16 if float_type == TensorProto.FLOAT16 else np.float32

    def init(self, name, arr):
        if name in self.init_names:
            return name
        self.init_names.add(name)
        # (np.ascontiguousarray would turn 0-d scalars into shape [1]; keep them 0-d like torch exports.)
        self.inits.append(numpy_helper.from_array(np.array(arr, order="C", copy=True), name))
        return name

    def const_f(self, name, value):
        """Scalar float constant in the compute type (a 0-d initializer, like torch exports)."""
        return self.init(name, np.array(value, dtype=self.np_float))

    def const_i64(self, name, values):
        return self.init(name, np.array(values, dtype=np.int64))

    def layer_norm(self, x, gamma, beta, name, opset, outputs=None):
        if opset >= 17:
            return self.node("LayerNormalization", [x, gamma, beta], name + "/LayerNormalization",
                             outputs=outputs, axis=-1, epsilon=LAYER_NORM_EPS)
        # Before opset 17 the exporter writes LayerNorm out; ORT's LayerNormFusion folds it back.
        two = self.const_f("/LayerNorm/Constant_pow", 2.0)
        eps = self.const_f("/LayerNorm/Constant_eps", LAYER_NORM_EPS)
        mu = self.node("ReduceMean", [x], name + "/ReduceMean", axes=[-1], keepdims=1)
        d = self.node("Sub", [x, mu], name + "/Sub")
        sq = self.node("Pow", [d, two], name + "/Pow")
        var = self.node("ReduceMean", [sq], name + "/ReduceMean_1", axes=[-1], keepdims=1)
        var = self.node("Add", [var, eps], name + "/Add")
        sd = self.node("Sqrt", [var], name + "/Sqrt")
        n = self.node("Div", [d, sd], name + "/Div")
        n = self.node("Mul", [n, gamma], name + "/Mul")
        return self.node("Add", [n, beta], name + "/Add_1", outputs=outputs)

    def unsqueeze(self, x, axes, name, opset):
        if opset >= 13:
            return self.node("Unsqueeze", [x, self.const_i64(name + "/axes", axes)], name)
        return self.node("Unsqueeze", [x], name, axes=axes)

    def node(self, op, inputs, name, outputs=None, **attrs):
        if outputs is None:
            outputs = [name + "_output_0"]
        self.nodes.append(helper.make_node(op, inputs, outputs, name=name, **attrs))
        return outputs[0] if len(outputs) == 1 else outputs


def build_model(cfg, w):
    H, N = cfg["hidden"], cfg["heads"]
    D = H // N
    fp16 = cfg["dtype"] == "fp16"
    opset = cfg["opset"]
    ft = TensorProto.FLOAT16 if fp16 else TensorProto.FLOAT
    g = GraphBuilder(ft)
    for k, v in w.items():
        g.init(k, v)

    # ---- embeddings -------------------------------------------------------
    word = g.node("Gather", ["embeddings.word_embeddings.weight", "input_ids"],
                  "/embeddings/word_embeddings/Gather")
    tok = g.node("Gather", ["embeddings.token_type_embeddings.weight", "token_type_ids"],
                 "/embeddings/token_type_embeddings/Gather")
    emb = g.node("Add", [word, tok], "/embeddings/Add")
    # position_ids = self.position_ids[:, :seq_len]  (HF's registered buffer, sliced by the sequence length)
    g.const_i64("embeddings.position_ids", np.arange(cfg["max_positions"], dtype=np.int64)[None, :])
    shape = g.node("Shape", ["input_ids"], "/embeddings/Shape")
    seq_len = g.node("Gather", [shape, g.const_i64("/embeddings/Constant_1", 1)], "/embeddings/Gather", axis=0)
    seq_len_1d = g.unsqueeze(seq_len, [0], "/embeddings/Unsqueeze", opset)
    pos_ids = g.node("Slice", ["embeddings.position_ids", g.const_i64("/embeddings/starts_0", [0]), seq_len_1d,
                               g.const_i64("/embeddings/axes_1", [1]), g.const_i64("/embeddings/steps_1", [1])],
                     "/embeddings/Slice")
    pos = g.node("Gather", ["embeddings.position_embeddings.weight", pos_ids],
                 "/embeddings/position_embeddings/Gather")
    emb = g.node("Add", [emb, pos], "/embeddings/Add_1")
    hidden = g.layer_norm(emb, "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias",
                          "/embeddings/LayerNorm", opset)

    # ---- extended attention mask: (1 - mask[:, None, None, :]) * -10000 ------
    m = g.unsqueeze("attention_mask", [1], "/Unsqueeze", opset)
    m = g.unsqueeze(m, [2], "/Unsqueeze_1", opset)
    m = g.node("Cast", [m], "/Cast", to=ft)
    m = g.node("Sub", [g.const_f("/Constant_one", 1.0), m], "/Sub")
    mask = g.node("Mul", [m, g.const_f("/Constant_mask_value", MASK_FILTER_VALUE)], "/Mul")

    heads_shape = g.const_i64("/encoder/heads_shape", [0, 0, N, D])
    merge_shape = g.const_i64("/encoder/merge_shape", [0, 0, H])
    scale = g.const_f("/encoder/Constant_scale", math.sqrt(D))
    sqrt2 = g.const_f("/encoder/Constant_sqrt2", math.sqrt(2.0))
    one = g.const_f("/encoder/Constant_one", 1.0)
    half = g.const_f("/encoder/Constant_half", 0.5)

    def linear(x, prefix, scope):
        y = g.node("MatMul", [x, prefix + ".weight"], scope + "/MatMul")
        return g.node("Add", [y, prefix + ".bias"], scope + "/Add")

    for i in range(cfg["layers"]):
        p = "encoder.layer.%d." % i
        s = "/encoder/layer.%d" % i
        sa = s + "/attention/self"
        q = linear(hidden, p + "attention.self.query", sa + "/query")
        k = linear(hidden, p + "attention.self.key", sa + "/key")
        v = linear(hidden, p + "attention.self.value", sa + "/value")
        q = g.node("Reshape", [q, heads_shape], sa + "/Reshape")
        q = g.node("Transpose", [q], sa + "/Transpose", perm=[0, 2, 1, 3])
        k = g.node("Reshape", [k, heads_shape], sa + "/Reshape_1")
        k = g.node("Transpose", [k], sa + "/Transpose_1", perm=[0, 2, 3, 1])
        v = g.node("Reshape", [v, heads_shape], sa + "/Reshape_2")
        v = g.node("Transpose", [v], sa + "/Transpose_2", perm=[0, 2, 1, 3])
        scores = g.node("MatMul", [q, k], sa + "/MatMul")
        scores = g.node("Div", [scores, scale], sa + "/Div")
        scores = g.node("Add", [scores, mask], sa + "/Add")
        probs = g.node("Softmax", [scores], sa + "/Softmax", axis=3)
        ctx = g.node("MatMul", [probs, v], sa + "/MatMul_1")
        ctx = g.node("Transpose", [ctx], sa + "/Transpose_3", perm=[0, 2, 1, 3])
        ctx = g.node("Reshape", [ctx, merge_shape], sa + "/Reshape_3")
        so = s + "/attention/output"
        attn = linear(ctx, p + "attention.output.dense", so + "/dense")
        attn = g.node("Add", [attn, hidden], so + "/Add")
        hidden = g.layer_norm(attn, p + "attention.output.LayerNorm.weight", p + "attention.output.LayerNorm.bias",
                              so + "/LayerNorm", opset)
        si = s + "/intermediate"
        f = linear(hidden, p + "intermediate.dense", si + "/dense")
        # GELU(x) = x * 0.5 * (1 + erf(x / sqrt(2)))  -- torch's erf GELU as exported
        e = g.node("Div", [f, sqrt2], si + "/intermediate_act_fn/Div")
        e = g.node("Erf", [e], si + "/intermediate_act_fn/Erf")
        e = g.node("Add", [e, one], si + "/intermediate_act_fn/Add")
        e = g.node("Mul", [f, e], si + "/intermediate_act_fn/Mul")
        f = g.node("Mul", [e, half], si + "/intermediate_act_fn/Mul_1")
        sf = s + "/output"
        out = linear(f, p + "output.dense", sf + "/dense")
        out = g.node("Add", [out, hidden], sf + "/Add")
        last = i == cfg["layers"] - 1
        ln_out = ["last_hidden_state"] if (last and not fp16) else None
        hidden = g.layer_norm(out, p + "output.LayerNorm.weight", p + "output.LayerNorm.bias",
                              sf + "/LayerNorm", opset, outputs=ln_out)
    if fp16:
        g.node("Cast", [hidden], "/Cast_output", outputs=["last_hidden_state"], to=TensorProto.FLOAT)

    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"])
              for n in ("input_ids", "attention_mask", "token_type_ids")]
    outputs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "seq", H])]
    graph = helper.make_graph(g.nodes, "embedd_test_bert", inputs, outputs, initializer=g.inits)
    model = helper.make_model(graph, producer_name=PRODUCER_NAME, producer_version=PRODUCER_VERSION,
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = IR_VERSION
    model.doc_string = ("Random-weight BERT encoder with the shape of sentence-transformers/all-MiniLM-L6-v2 "
                        "(layers=%d hidden=%d heads=%d ffn=%d max_positions=%d vocab=%d dtype=%s opset=%d "
                        "seed=%d). Its outputs mean nothing; its cost equals the real model's."
                        % (cfg["layers"], H, N, cfg["ffn"], cfg["max_positions"], VOCAB_SIZE,
                           cfg["dtype"], opset, cfg["seed"]))
    for key in ("seed", "layers", "hidden", "heads", "ffn", "max_positions", "dtype", "opset"):
        model.metadata_props.add(key=key, value=str(cfg[key]))
    return model


# ---------------------------------------------------------------------------
# Side files


def pooling_config(kind, dim):
    return {
        "word_embedding_dimension": dim,
        "pooling_mode_cls_token": kind == "cls",
        "pooling_mode_mean_tokens": kind == "mean",
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": kind == "lasttoken",
        "include_prompt": True,
    }


def bert_config(cfg):
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_size": cfg["hidden"],
        "num_hidden_layers": cfg["layers"],
        "num_attention_heads": cfg["heads"],
        "intermediate_size": cfg["ffn"],
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": cfg["max_positions"],
        "vocab_size": VOCAB_SIZE,
        "type_vocab_size": TYPE_VOCAB_SIZE,
        "initializer_range": INIT_STD,
        "layer_norm_eps": LAYER_NORM_EPS,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "torch_dtype": "float16" if cfg["dtype"] == "fp16" else "float32",
    }


MODULES = [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
]


def notice_text(cfg, tokenizer_src, tokenizer_sha):
    argv = "scripts/gen_test_model.py OUT_DIR --seed %d --layers %d --hidden %d --heads %d --ffn %d " \
           "--max-positions %d --pooling %s --dtype %s --opset %d" % (
               cfg["seed"], cfg["layers"], cfg["hidden"], cfg["heads"], cfg["ffn"],
               cfg["max_positions"], cfg["pooling"], cfg["dtype"], cfg["opset"])
    return """This folder was written by embedd's scripts/gen_test_model.py.

model.onnx
  A BERT encoder with the exact shape of sentence-transformers/all-MiniLM-L6-v2
  (here: {layers} layers, hidden {hidden}, {heads} heads, FFN {ffn}, vocabulary {vocab},
  {maxpos} positions, {dtype}) whose weights are RANDOM: drawn by numpy
  default_rng(seed={seed}) from N(0, 0.02), with zero biases and unit LayerNorm, like
  BERT's initialiser. It is not the trained model and contains nothing from it.
  Its vectors mean nothing, but its cost to run equals the real model's.
  Regenerate with:
    {argv}

tokenizer.json
  The tokenizer of sentence-transformers/all-MiniLM-L6-v2
  (https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2), licensed under the
  Apache License, Version 2.0 (https://www.apache.org/licenses/LICENSE-2.0).
  This copy comes from the Go module github.com/daulet/tokenizers@v1.27.0 (MIT),
  file test/data/all-minilm-l6-v2.json, via embedd's
  models/tokenizer/testdata/all-minilm-l6-v2.json.
  Copied from: {src}
  sha256: {sha}

config.json, modules.json, sentence_bert_config.json, 1_Pooling/, 2_Normalize/
  Written by the script to match the layout of a sentence-transformers folder.
""".format(layers=cfg["layers"], hidden=cfg["hidden"], heads=cfg["heads"], ffn=cfg["ffn"],
           vocab=VOCAB_SIZE, maxpos=cfg["max_positions"], dtype=cfg["dtype"], seed=cfg["seed"],
           argv=argv, src=os.path.relpath(os.path.abspath(tokenizer_src), REPO_ROOT)
           if os.path.abspath(tokenizer_src).startswith(REPO_ROOT + os.sep) else os.path.basename(tokenizer_src),
           sha=tokenizer_sha)


def write_bytes(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_json(path, obj):
    write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode("utf-8"))


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------
# Verification: a numpy BERT, and a small numpy interpreter for the graph


_erf = np.vectorize(math.erf, otypes=[np.float64])


def erf(x):
    return _erf(x.astype(np.float64))


def numpy_bert(cfg, w, input_ids, attention_mask, token_type_ids):
    """Reference BERT forward pass (HF BertModel, eval mode), float32 (or float64-exact erf)."""
    H, N = cfg["hidden"], cfg["heads"]
    D = H // N
    W = {k: v.astype(np.float32) for k, v in w.items()}
    B, S = input_ids.shape

    def ln(x, g, b):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + LAYER_NORM_EPS) * g + b

    x = (W["embeddings.word_embeddings.weight"][input_ids]
         + W["embeddings.token_type_embeddings.weight"][token_type_ids]
         + W["embeddings.position_embeddings.weight"][np.arange(S)][None])
    x = ln(x, W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"])
    add_mask = ((1.0 - attention_mask.astype(np.float32)) * MASK_FILTER_VALUE)[:, None, None, :]
    for i in range(cfg["layers"]):
        p = "encoder.layer.%d." % i

        def lin(t, name):
            return t @ W[p + name + ".weight"] + W[p + name + ".bias"]

        def heads(t):
            return t.reshape(B, S, N, D).transpose(0, 2, 1, 3)

        q, k, v = (heads(lin(x, "attention.self." + n)) for n in ("query", "key", "value"))
        sc = q @ k.transpose(0, 1, 3, 2) / np.float32(math.sqrt(D)) + add_mask
        sc = np.exp(sc - sc.max(-1, keepdims=True))
        pr = sc / sc.sum(-1, keepdims=True)
        c = (pr @ v).transpose(0, 2, 1, 3).reshape(B, S, H)
        x = ln(lin(c, "attention.output.dense") + x,
               W[p + "attention.output.LayerNorm.weight"], W[p + "attention.output.LayerNorm.bias"])
        f = lin(x, "intermediate.dense")
        f = (0.5 * f * (1.0 + erf(f / math.sqrt(2.0)))).astype(np.float32)
        x = ln(lin(f, "output.dense") + x,
               W[p + "output.LayerNorm.weight"], W[p + "output.LayerNorm.bias"])
    return x.astype(np.float32)


_NP_TYPES = {TensorProto.FLOAT: np.float32, TensorProto.FLOAT16: np.float16,
             TensorProto.INT64: np.int64, TensorProto.INT32: np.int32,
             TensorProto.DOUBLE: np.float64, TensorProto.BOOL: np.bool_}


def run_graph_numpy(model, feeds):
    """Execute the model's nodes one by one with numpy (supports the ops this script emits).

    Float16 tensors are computed in float32 and rounded back after each op, as an
    accelerator's fp16 kernels with fp32 accumulation do.
    """
    env = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    env.update(feeds)

    def f32(x):
        return x.astype(np.float32) if x.dtype == np.float16 else x

    def like(y, x):
        return y.astype(x.dtype) if x.dtype in (np.float16, np.float32) else y

    for n in model.graph.node:
        a = {at.name: helper.get_attribute_value(at) for at in n.attribute}
        x = [env[i] if i else None for i in n.input]
        op = n.op_type
        if op == "Gather":
            y = np.take(x[0], x[1], axis=a.get("axis", 0))
        elif op in ("Add", "Sub", "Mul", "Div"):
            fn = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op]
            y = fn(f32(x[0]), f32(x[1]))
            if x[0].dtype == np.float16:
                y = y.astype(np.float16)
            elif x[0].dtype == np.int64:
                y = y.astype(np.int64)
            else:
                y = y.astype(x[0].dtype)
        elif op == "MatMul":
            y = like(np.matmul(f32(x[0]), f32(x[1])), x[0])
        elif op == "Shape":
            y = np.array(x[0].shape, dtype=np.int64)
        elif op == "Unsqueeze":
            if len(x) > 1:
                if x[1].ndim != 1:
                    raise RuntimeError("numpy graph runner: Unsqueeze %s: axes must be 1-D" % n.name)
                axes = x[1]
            else:
                axes = a["axes"]
            y = x[0]
            for ax in sorted(int(v) for v in axes):
                y = np.expand_dims(y, ax)
        elif op == "Slice":
            starts, ends = x[1], x[2]
            if starts.ndim != 1 or ends.ndim != 1:
                raise RuntimeError("numpy graph runner: Slice %s: starts/ends must be 1-D" % n.name)
            axes = x[3] if len(x) > 3 and x[3] is not None else np.arange(len(starts))
            steps = x[4] if len(x) > 4 and x[4] is not None else np.ones(len(starts), np.int64)
            sl = [slice(None)] * x[0].ndim
            for s0, e0, ax, st in zip(starts, ends, axes, steps):
                sl[int(ax)] = slice(int(s0), int(e0), int(st))
            y = x[0][tuple(sl)]
        elif op == "Reshape":
            if x[1].ndim != 1:
                raise RuntimeError("numpy graph runner: Reshape %s: shape must be 1-D" % n.name)
            shp = [int(d) for d in x[1]]
            shp = [x[0].shape[j] if d == 0 else d for j, d in enumerate(shp)]
            y = x[0].reshape(shp)
        elif op == "Transpose":
            y = np.transpose(x[0], a["perm"])
        elif op == "Softmax":
            ax = a.get("axis", -1)
            t = f32(x[0])
            t = np.exp(t - t.max(ax, keepdims=True))
            y = like(t / t.sum(ax, keepdims=True), x[0])
        elif op == "LayerNormalization":
            ax = a.get("axis", -1)
            eps = a.get("epsilon", 1e-5)
            t = x[0].astype(np.float32)  # stash_type=1: compute in float32
            mu = t.mean(ax, keepdims=True)
            var = ((t - mu) ** 2).mean(ax, keepdims=True)
            t = (t - mu) / np.sqrt(var + eps) * f32(x[1]) + f32(x[2])
            y = t.astype(x[0].dtype)
        elif op == "ReduceMean":
            y = like(f32(x[0]).mean(axis=tuple(a["axes"]), keepdims=bool(a.get("keepdims", 1))), x[0])
        elif op == "Pow":
            y = like(np.power(f32(x[0]), f32(x[1])), x[0])
        elif op == "Sqrt":
            y = like(np.sqrt(f32(x[0])), x[0])
        elif op == "Erf":
            y = erf(x[0]).astype(x[0].dtype)
        elif op == "Cast":
            y = x[0].astype(_NP_TYPES[a["to"]])
        else:
            raise RuntimeError("numpy graph runner: unsupported op %s (node %s)" % (op, n.name))
        env[n.output[0]] = y
    return [env[o.name] for o in model.graph.output]


def reference_evaluator():
    try:
        from onnx.reference import ReferenceEvaluator  # onnx >= 1.13
        return ReferenceEvaluator
    except ImportError:
        return None


def verify(cfg, w, model_path):
    """Run the written graph on a small padded batch; compare with numpy BERT; check padding."""
    model = onnx.load(model_path)
    rng = np.random.default_rng(12345)
    # Three "sentences" of lengths 9, 5, 12 ([CLS] ... [SEP]), right-padded to 12 with [PAD]=0.
    lens = [9, 5, 12]
    S = max(lens)
    ids = np.zeros((len(lens), S), np.int64)
    mask = np.zeros_like(ids)
    tt = np.zeros_like(ids)
    for b, L in enumerate(lens):
        ids[b, :L] = np.concatenate([[101], rng.integers(1000, VOCAB_SIZE, L - 2), [102]])
        mask[b, :L] = 1
    tt[2, 7:12] = 1  # a sentence pair: segment B in row 2
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": tt}

    ref = numpy_bert(cfg, w, ids, mask, tt)
    t0 = time.time()
    got = run_graph_numpy(model, feeds)[0]
    t_np = time.time() - t0
    valid = mask.astype(bool)
    d_graph = float(np.abs(got - ref)[valid].max())
    fp16 = cfg["dtype"] == "fp16"
    tol = 5e-2 if fp16 else 1e-4
    ok = True
    print("verify: numpy graph runner vs numpy BERT reference: max |diff| over real tokens = %.3g "
          "(tolerance %.0e, %.2fs)" % (d_graph, tol, t_np))
    if got.dtype != np.float32 or got.shape != (len(lens), S, cfg["hidden"]):
        print("verify: FAIL: output is %s %s" % (got.dtype, got.shape))
        ok = False
    if not d_graph <= tol:
        print("verify: FAIL: graph does not compute BERT")
        ok = False

    RE = reference_evaluator()
    if RE is None:
        print("verify: onnx %s has no onnx.reference.ReferenceEvaluator (onnx >= 1.13); "
              "the numpy graph runner above stands in for it" % onnx.__version__)
    else:
        t0 = time.time()
        ev = RE(model)
        out = ev.run(None, feeds)[0]
        d_ev = float(np.abs(out - ref)[valid].max())
        print("verify: onnx ReferenceEvaluator vs numpy BERT reference: max |diff| = %.3g (%.2fs)"
              % (d_ev, time.time() - t0))
        if not d_ev <= tol:
            print("verify: FAIL: ReferenceEvaluator disagrees with the numpy BERT")
            ok = False

    # Padding must not leak: each sentence run alone (no padding) gives the same states for its tokens.
    worst = 0.0
    for b, L in enumerate(lens):
        one = {"input_ids": ids[b:b + 1, :L], "attention_mask": mask[b:b + 1, :L],
               "token_type_ids": tt[b:b + 1, :L]}
        alone = run_graph_numpy(model, one)[0][0]
        worst = max(worst, float(np.abs(alone - got[b, :L]).max()))
    ptol = 1e-2 if fp16 else 1e-5
    print("verify: padding independence (alone vs padded in batch): max |diff| = %.3g (tolerance %.0e)"
          % (worst, ptol))
    if not worst <= ptol:
        print("verify: FAIL: outputs of real tokens depend on padding")
        ok = False
    # Sanity: random weights still give per-token LayerNorm-ed states (mean 0, std ~1).
    print("verify: output stats over real tokens: mean %.3g std %.3g" % (got[valid].mean(), got[valid].std()))
    return ok


# ---------------------------------------------------------------------------


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    t_start = time.time()
    cfg = {"seed": args.seed, "layers": args.layers, "hidden": args.hidden, "heads": args.heads,
           "ffn": args.ffn, "max_positions": args.max_positions, "dtype": args.dtype,
           "pooling": args.pooling, "opset": args.opset}
    out = args.out_dir
    os.makedirs(out, exist_ok=True)
    os.makedirs(os.path.join(out, "1_Pooling"), exist_ok=True)
    os.makedirs(os.path.join(out, "2_Normalize"), exist_ok=True)

    w = make_weights(cfg)
    model = build_model(cfg, w)
    model_bytes = model.SerializeToString()
    if len(model_bytes) >= 2 ** 31:
        fail_usage("model would be %d bytes, over protobuf's 2 GiB limit for a single file; "
                   "use smaller --layers/--hidden/--ffn" % len(model_bytes))
    model_path = os.path.join(out, "model.onnx")
    write_bytes(model_path, model_bytes)
    del model_bytes

    with open(args.tokenizer, "rb") as f:
        tok = f.read()
    write_bytes(os.path.join(out, "tokenizer.json"), tok)
    tok_sha = hashlib.sha256(tok).hexdigest()
    write_json(os.path.join(out, "config.json"), bert_config(cfg))
    write_json(os.path.join(out, "modules.json"), MODULES)
    write_json(os.path.join(out, "sentence_bert_config.json"),
               {"max_seq_length": min(DEFAULT_MAX_SEQ_LENGTH, args.max_positions), "do_lower_case": False})
    write_json(os.path.join(out, "1_Pooling", "config.json"), pooling_config(args.pooling, args.hidden))
    write_bytes(os.path.join(out, "NOTICE"), notice_text(cfg, args.tokenizer, tok_sha).encode("utf-8"))

    # Validate what was written.
    try:
        onnx.checker.check_model(model_path, full_check=True)
    except Exception as e:  # onnx raises ValidationError / InferenceError
        sys.stderr.write("gen_test_model.py: onnx.checker rejected %s: %s\n" % (model_path, e))
        return 1
    n_params = sum(int(v.size) for v in w.values())
    print("wrote %s (onnx %s, opset %d, IR %d, %s, %d layers, hidden %d, %d heads, ffn %d, %d params, seed %d)"
          % (out, onnx.__version__, args.opset, IR_VERSION, args.dtype, args.layers, args.hidden, args.heads,
             args.ffn, n_params, args.seed))
    for rel in ("model.onnx", "tokenizer.json", "NOTICE", "config.json", "modules.json",
                "sentence_bert_config.json", os.path.join("1_Pooling", "config.json"), "2_Normalize/"):
        path = os.path.join(out, rel)
        if os.path.isdir(path):
            print("  %-28s (folder)" % rel)
        else:
            print("  %-28s %12d bytes" % (rel, os.path.getsize(path)))
    print("model.onnx sha256 %s" % sha256_file(model_path))
    print("onnx.checker.check_model(full_check=True): ok")
    ok = True
    if args.verify:
        ok = verify(cfg, w, model_path)
        print("verify: %s" % ("ok" if ok else "FAILED"))
    print("done in %.1fs" % (time.time() - t_start))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
