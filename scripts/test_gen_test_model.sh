#!/usr/bin/env bash
# Tests for scripts/gen_test_model.py: determinism, folder layout, graph interface,
# numeric verification (fp32/fp16, opset 17/12) and argument errors.
# Usage: scripts/test_gen_test_model.sh   (needs /usr/bin/python3 with numpy and onnx)
set -euo pipefail

PY=/usr/bin/python3
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
GEN="$HERE/gen_test_model.py"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok   $*"; }

# 1. Default model, twice: byte-identical folders.
"$PY" "$GEN" "$TMP/a" >"$TMP/a.log"
"$PY" "$GEN" "$TMP/b" >"$TMP/b.log"
sa=$(sha256sum "$TMP/a/model.onnx" | cut -d' ' -f1)
sb=$(sha256sum "$TMP/b/model.onnx" | cut -d' ' -f1)
[ "$sa" = "$sb" ] || fail "model.onnx differs between two runs ($sa vs $sb)"
diff -r "$TMP/a" "$TMP/b" >/dev/null || fail "output folders differ between two runs"
grep -q "model.onnx sha256 $sa" "$TMP/a.log" || fail "printed sha256 does not match the file"
pass "deterministic: model.onnx sha256 $sa"

# 2. Folder layout and side files.
for f in model.onnx tokenizer.json NOTICE config.json modules.json sentence_bert_config.json 1_Pooling/config.json; do
  [ -f "$TMP/a/$f" ] || fail "missing $f"
done
[ -d "$TMP/a/2_Normalize" ] || fail "missing 2_Normalize/"
cmp -s "$TMP/a/tokenizer.json" "$HERE/../models/tokenizer/testdata/all-minilm-l6-v2.json" || fail "tokenizer.json is not a copy"
grep -q "Apache" "$TMP/a/NOTICE" && grep -q "seed=0" "$TMP/a/NOTICE" || fail "NOTICE lacks license or seed"
pass "folder layout"

# 3. Graph interface, config files, size.
"$PY" - "$TMP/a" <<'EOF'
import json, os, sys
import numpy as np
import onnx
from onnx import TensorProto
d = sys.argv[1]
m = onnx.load(os.path.join(d, "model.onnx"))
assert m.ir_version <= 10, m.ir_version
assert [(o.domain, o.version) for o in m.opset_import] == [("", 17)], m.opset_import
assert m.producer_name == "embedd gen_test_model.py", m.producer_name
def sig(v):
    t = v.type.tensor_type
    return (v.name, t.elem_type, [x.dim_param or x.dim_value for x in t.shape.dim])
ins = [sig(v) for v in m.graph.input]
assert ins == [(n, TensorProto.INT64, ["batch", "seq"]) for n in ("input_ids", "attention_mask", "token_type_ids")], ins
outs = [sig(v) for v in m.graph.output]
assert outs == [("last_hidden_state", TensorProto.FLOAT, ["batch", "seq", 384])], outs
assert not any(t.data_location == TensorProto.EXTERNAL for t in m.graph.initializer)
ops = {n.op_type for n in m.graph.node}
for op in ("Gather", "LayerNormalization", "MatMul", "Softmax", "Erf", "Transpose", "Reshape"):
    assert op in ops, op
assert sum(n.op_type == "Softmax" for n in m.graph.node) == 6
# all-MiniLM-L6-v2 has 22,713,216 parameters, 147,840 of them in the pooler that last_hidden_state never uses.
params = sum(int(np.prod(t.dims)) for t in m.graph.initializer
             if t.data_type == TensorProto.FLOAT and not t.name.startswith("/") and t.name != "embeddings.position_ids")
assert params == 22713216 - 147840, params
size = os.path.getsize(os.path.join(d, "model.onnx"))
assert 85e6 < size < 95e6, size
c = json.load(open(os.path.join(d, "config.json")))
assert c["architectures"] == ["BertModel"] and c["model_type"] == "bert"
assert (c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"], c["intermediate_size"]) == (384, 6, 12, 1536)
assert (c["vocab_size"], c["max_position_embeddings"], c["type_vocab_size"], c["layer_norm_eps"]) == (30522, 512, 2, 1e-12)
assert c["hidden_act"] == "gelu" and c["pad_token_id"] == 0
mods = json.load(open(os.path.join(d, "modules.json")))
assert [x["path"] for x in mods] == ["", "1_Pooling", "2_Normalize"]
p = json.load(open(os.path.join(d, "1_Pooling", "config.json")))
assert p["pooling_mode_mean_tokens"] is True and p["pooling_mode_cls_token"] is False and p["word_embedding_dimension"] == 384
assert json.load(open(os.path.join(d, "sentence_bert_config.json"))) == {"max_seq_length": 256, "do_lower_case": False}
EOF
pass "graph interface and config files"

# 4. Another seed gives another model.
"$PY" "$GEN" "$TMP/s1" --seed 1 --layers 1 >/dev/null
"$PY" "$GEN" "$TMP/s0" --seed 0 --layers 1 >/dev/null
cmp -s "$TMP/s0/model.onnx" "$TMP/s1/model.onnx" && fail "--seed 1 gave the same model as --seed 0"
pass "seed changes weights"

# 5. Numeric verification: the graph computes BERT and ignores padding.
for args in "--layers 6" "--layers 2 --dtype fp16" "--layers 2 --opset 12" "--layers 1 --opset 14 --dtype fp16"; do
  # shellcheck disable=SC2086
  "$PY" "$GEN" "$TMP/v" $args --verify >"$TMP/v.log" || { cat "$TMP/v.log"; fail "--verify $args"; }
  grep -q "^verify: ok" "$TMP/v.log" || fail "--verify $args did not report ok"
  pass "verify $args: $(grep -o 'max |diff| over real tokens = [^ ]*' "$TMP/v.log")"
done

# 6. Pooling variants.
for pool in cls lasttoken; do
  "$PY" "$GEN" "$TMP/p_$pool" --layers 1 --pooling "$pool" >/dev/null
  "$PY" -c "import json,sys; p=json.load(open(sys.argv[1])); k={'cls':'pooling_mode_cls_token','lasttoken':'pooling_mode_lasttoken'}[sys.argv[2]]; assert p[k] and not p['pooling_mode_mean_tokens'], p" \
    "$TMP/p_$pool/1_Pooling/config.json" "$pool"
done
pass "pooling cls/lasttoken"

# 7. Argument errors exit 2 naming the flag.
expect_usage_error() {
  local want="$1"; shift
  set +e
  "$PY" "$GEN" "$TMP/err" "$@" >/dev/null 2>"$TMP/err.log"
  local rc=$?
  set -e
  [ "$rc" = 2 ] || fail "$* exited $rc, want 2"
  grep -q -- "$want" "$TMP/err.log" || { cat "$TMP/err.log"; fail "$* error lacks '$want'"; }
}
expect_usage_error "--hidden 100 is not divisible by --heads 12" --hidden 100
expect_usage_error "--heads 0" --heads 0
expect_usage_error "--layers 0" --layers 0
expect_usage_error "--tokenizer" --tokenizer "$TMP/nope.json"
expect_usage_error "--dtype" --dtype bf16
expect_usage_error "--opset" --opset 18
pass "argument errors exit 2"

echo "all gen_test_model.py tests passed"
