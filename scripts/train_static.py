#!/usr/bin/python3
"""train_static.py: trains embedd's default static embedding model.

A sentence-transformers StaticEmbedding folder (modules.json,
0_StaticEmbedding/{model.safetensors,tokenizer.json}, 1_Normalize, NOTICE)
over the all-MiniLM-L6-v2 (bert-base-uncased) WordPiece vocabulary, trained
only on permissively licensed or public-domain English text that Debian
packages ship (see SOURCES and the NOTICE written next to the model).

Method (chosen by measurement, see README "The default models"): WordPiece ids of
every paragraph (scripts/wordpiece, the exact tokenizer embedd serves with),
two views of each token, each a positive PMI matrix reduced by a truncated SVD
(randomized, fixed seed, single-threaded BLAS), its mean and top principal
component removed and its rows normalised:
  - local: co-occurrence in a window weighted 1/distance, left and right
    contexts apart (a row per token, a column per context token and side),
    with context-distribution smoothing;
  - topical: token x document counts, a document being consecutive paragraphs
    of one file up to max_length tokens, PPMI scaled by idf.
The two side by side are reduced to --dim columns by an SVD whose rows are
weighted by how much each token weighs in pooled text (sqrt(count) times its
pooling weight), rows normalised; then a random-projection lexical part
(--lex-dim), every row scaled by a per-token weight (smooth inverse
frequency), stored in fp16. Mean pooling of the rows (what StaticEmbedding
does) is then a SIF-weighted average.

Deterministic: the same packages give the same bytes (checked by sha256 in
--check). Run with nice; it uses one core.

  scripts/train_static.py OUT_DIR [--eval DOCS.jsonl.xz]   (--eval only reports)
  scripts/train_static.py OUT_DIR --check SHA256   (exit 1 if the model differs)
  scripts/train_static.py --packages               (the Debian packages it needs)

Needs the Debian packages --packages prints and Go (for scripts/wordpiece);
scripts/setup.sh installs them and runs it.
"""
import argparse
import glob
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import struct
import subprocess
import sys
import time

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"  # one thread: the same sums in the same order every run

np = sp = None  # numpy and scipy.sparse, imported by main (--packages needs neither)

# The Debian packages the script needs besides the documentation it reads.
TOOLS = ["python3-numpy", "python3-scipy", "python3-sklearn", "python3-lxml"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = "/usr/share/doc"

# (Debian package, licence, files). Every file is read in sorted order.
SOURCES = [
    ("wordnet-base", "WordNet 3.0 License (Princeton University; permissive, BSD-like)",
     ["/usr/share/wordnet/data.noun", "/usr/share/wordnet/data.verb",
      "/usr/share/wordnet/data.adj", "/usr/share/wordnet/data.adv"]),
    ("python3-doc", "PSF License Version 2 (Python documentation)", [DOC + "/python3.*/html/**/*.html"]),
    ("postgresql-doc", "PostgreSQL License (permissive, BSD-like)", [DOC + "/postgresql-doc-*/html/*.html"]),
    ("nodejs-doc", "Expat (MIT), Node.js documentation", [DOC + "/nodejs/api/*.html"]),
    ("python-django-doc", "BSD-3-Clause", [DOC + "/python-django-doc/html/**/*.html"]),
    ("sqlite3-doc", "public domain", [DOC + "/sqlite3/**/*.html"]),
    ("cmake-doc", "BSD-3-Clause", [DOC + "/cmake-doc/html/**/*.html"]),
    ("apache2-doc", "Apache-2.0", [DOC + "/apache2-doc/manual/**/*.html"]),
    ("python-sqlalchemy-doc", "Expat (MIT)", [DOC + "/python-sqlalchemy-doc/html/**/*.html"]),
    ("python-flask-doc", "BSD-3-Clause", [DOC + "/python-flask-doc/html/**/*.html"]),
    ("sphinx-doc", "BSD-2-Clause", [DOC + "/sphinx-doc/html/**/*.html"]),
    ("docker-doc", "Apache-2.0", [DOC + "/docker-doc/**/*.md", DOC + "/docker-doc/**/*.md.gz"]),
    ("python-requests-doc", "Apache-2.0", [DOC + "/python-requests-doc/html/**/*.html"]),
    ("python-werkzeug-doc", "BSD-3-Clause", [DOC + "/python-werkzeug-doc/html/**/*.html"]),
    ("python-jinja2-doc", "BSD-3-Clause", [DOC + "/python-jinja2-doc/html/**/*.html"]),
    ("python-pytest-doc", "Expat (MIT)", [DOC + "/python-pytest-doc/html/**/*.html"]),
    ("python-tornado-doc", "Apache-2.0", [DOC + "/python-tornado-doc/html/**/*.html"]),
    ("python-aiohttp-doc", "Apache-2.0", [DOC + "/python-aiohttp-doc/html/**/*.html"]),
    ("python-openstackclient-doc", "Apache-2.0", [DOC + "/python-openstackclient-doc/html/**/*.html"]),
    ("dict-jargon", "public domain (The Jargon File 4.4.7)", ["/usr/share/dictd/jargon.dict.dz"]),
    ("dict-devil", "public domain (Ambrose Bierce, The Devil's Dictionary, 1911)", ["/usr/share/dictd/devil.dict.dz"]),
]

CORPUS_FORMAT = 2  # one paragraph a line, an empty line after each file

WORDNET_LINE = re.compile(r"^\d{8} ")


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def files_of(patterns):
    """The files the patterns match, each once (Debian links some folders, as
    python3.X-dev to python3.X), sorted."""
    out = []
    for p in patterns:
        out.extend(os.path.realpath(f) for f in glob.glob(p, recursive=True) if os.path.isfile(f))
    return sorted(set(out))


def wordnet_lines(path):
    """One line per synset: its words, then its gloss and examples."""
    for line in open(path, encoding="latin-1"):
        if not WORDNET_LINE.match(line):
            continue
        head, _, gloss = line.partition(" | ")
        f = head.split()
        n = int(f[3], 16)
        words = " ".join(f[4 + 2 * i].replace("_", " ") for i in range(n))
        words = re.sub(r"\(\w+\)$", "", words)
        yield words + " : " + gloss.strip()


def html_lines(path):
    import lxml.html
    try:
        root = lxml.html.parse(path).getroot()
    except Exception:
        return
    if root is None:
        return
    for bad in root.xpath("//script|//style|//head|//nav"):
        bad.drop_tree()
    for el in root.iter("p", "li", "dt", "dd", "pre", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote"):
        el.tail = "\n" + (el.tail or "")
    yield from text_lines(root.text_content())


def text_lines(text):
    """Paragraphs: runs of non-empty lines, whitespace collapsed."""
    para = []
    for line in text.split("\n"):
        line = line.strip()
        if line:
            para.append(line)
        elif para:
            yield " ".join(para)
            para = []
    if para:
        yield " ".join(para)


def dict_lines(path):
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        yield from text_lines(f.read())


def source_lines(path):
    if path.startswith("/usr/share/wordnet/"):
        return wordnet_lines(path)
    if path.endswith(".dict.dz"):
        return dict_lines(path)
    if path.endswith(".md.gz"):
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
            return text_lines(f.read())
    if path.endswith(".md"):
        return text_lines(open(path, encoding="utf-8", errors="replace").read())
    return html_lines(path)


def build_corpus(path):
    """Writes the corpus, one paragraph a line, and returns per-source stats."""
    stats = []
    seen = set()
    with open(path, "w", encoding="utf-8") as out:
        for pkg, lic, patterns in SOURCES:
            files = files_of(patterns)
            if not files:
                sys.exit(f"train_static: no files of {pkg}: apt-get install {pkg}")
            words = 0
            for f in files:
                for line in source_lines(f):
                    line = line.replace("\r", " ").replace("\t", " ")
                    if len(line) < 20:
                        continue
                    h = hashlib.blake2b(line.encode(), digest_size=8).digest()
                    if h in seen:  # repeated boilerplate (headers, footers)
                        continue
                    seen.add(h)
                    out.write(line + "\n")
                    words += line.count(" ") + 1
                out.write("\n")  # an empty line ends each file (a document boundary)
            stats.append((pkg, lic, len(files), words))
            log(f"corpus: {pkg}: {len(files)} files, {words} words")
    return stats


def wordpiece(tokenizer, src, dst):
    """Runs scripts/wordpiece: src lines to uint16 ids, 0xFFFF after each line."""
    exe = os.path.join(os.path.dirname(dst), "wordpiece")
    subprocess.run(["go", "build", "-o", exe, "./scripts/wordpiece"], cwd=ROOT, check=True)
    with open(src, "rb") as i, open(dst, "wb") as o:
        subprocess.run([exe, tokenizer], stdin=i, stdout=o, check=True)
    return np.fromfile(dst, dtype=np.uint16)


def cooccurrence(ids, vocab, window):
    """Directed co-occurrence counts within lines, weighted 1/distance: m[a, b]
    counts b after a (a right context of a); m.T holds the left contexts."""
    sep = ids == 0xFFFF
    line = np.cumsum(sep)  # line number of each position
    tok = ids.astype(np.int64)
    keep = ~sep
    m = sp.csr_matrix((vocab, vocab), dtype=np.float64)
    chunk = 20_000_000
    for d in range(1, window + 1):
        a, b = tok[:-d], tok[d:]
        ok = keep[:-d] & keep[d:] & (line[:-d] == line[d:])
        a, b = a[ok], b[ok]
        for s in range(0, len(a), chunk):
            aa, bb = a[s:s + chunk], b[s:s + chunk]
            m = m + sp.coo_matrix((np.full(len(aa), 1.0 / d), (aa, bb)), shape=(vocab, vocab)).tocsr()
    return m


def documents(ids, vocab, length):
    """Token × document counts: a document is a run of consecutive paragraphs
    of one file (an empty line ends a file), closed once it has `length`
    tokens (the model's max_length: as much text as it embeds at once)."""
    sep = np.flatnonzero(ids == 0xFFFF)
    lens = np.diff(np.concatenate([[-1], sep])) - 1  # tokens of each line
    doc = np.empty(len(sep), dtype=np.int64)
    d = acc = 0
    for i, n in enumerate(lens.tolist()):
        if n == 0:  # end of a file
            if acc:
                d, acc = d + 1, 0
            doc[i] = -1
            continue
        doc[i] = d
        acc += n
        if acc >= length:
            d, acc = d + 1, 0
    keep = ids != 0xFFFF
    line = np.cumsum(~keep)[keep]  # line of each token
    x = sp.coo_matrix((np.ones(int(keep.sum())), (ids[keep].astype(np.int64), doc[line])),
                      shape=(vocab, d + (acc > 0))).tocsr()
    x.sum_duplicates()
    return x


def ppmi(m, alpha, shift):
    """Positive PMI with context-distribution smoothing alpha, minus log(shift)."""
    row = np.asarray(m.sum(axis=1)).ravel()
    col = np.asarray(m.sum(axis=0)).ravel() ** alpha
    col_total = col.sum()
    m = m.tocoo()
    # log(p(w,c) / (p(w) p_alpha(c))) with p(w,c) = m/total, p(w) = row/total,
    # p_alpha(c) = col/col_total: total cancels.
    pmi = np.log(m.data) + np.log(col_total) - np.log(row[m.row]) - np.log(col[m.col]) - np.log(shift)
    keep = pmi > 0
    return sp.csr_matrix((pmi[keep], (m.row[keep], m.col[keep])), shape=m.shape)


def factor(p, counts, rare, args):
    """Token vectors from a PPMI matrix: truncated SVD, singular values to a
    power, mean and top principal components removed, rows normalised."""
    from sklearn.utils.extmath import randomized_svd
    u, s, _ = randomized_svd(p, args.dim, n_iter=args.svd_iter, random_state=args.seed)
    vec = u * (s ** args.power)
    vec[rare] = 0
    mu = (vec * counts[:, None]).sum(0) / counts.sum()
    vec = vec - mu
    vec[rare] = 0
    if args.remove_pcs:
        _, _, vt = np.linalg.svd(vec[~rare] * np.sqrt(counts[~rare, None] / counts.sum()), full_matrices=False)
        top = vt[:args.remove_pcs]
        vec = vec - (vec @ top.T) @ top
    return unit_rows(vec)


def unit_rows(vec):
    norms = np.linalg.norm(vec, axis=1, keepdims=True)
    return np.divide(vec, norms, out=np.zeros_like(vec), where=norms > 0)


def train(ids, vocab, args):
    counts = np.bincount(ids[ids != 0xFFFF].astype(np.int64), minlength=vocab).astype(np.float64)
    log(f"tokens: {int(counts.sum())}, distinct: {int((counts > 0).sum())}")
    rare = counts < args.min_count
    prob = counts / counts.sum()
    weight = args.sif / (args.sif + prob)
    # Two views of a token, each its own SVD: its neighbours in a window,
    # left and right contexts apart (word order: what a token does), and the
    # documents it occurs in (what it is about).
    m = cooccurrence(ids, vocab, args.window)
    log(f"co-occurrence: {m.nnz} pairs")
    p = ppmi(sp.hstack([m, m.T.tocsr()]).tocsr(), args.alpha, args.shift)
    del m
    log(f"window ppmi: {p.nnz} positive")
    local = factor(p, counts, rare, args)
    del p
    log("window svd done")
    x = documents(ids, vocab, args.doc_length)
    idf = np.log((x.shape[1] + 1) / (np.diff(x.indptr) + 1))  # documents over documents with the token
    p = sp.diags(idf) @ ppmi(x, 1.0, 1.0)
    del x
    log(f"document ppmi: {p.shape[1]} documents, {p.nnz} positive")
    topical = factor(p, counts, rare, args)
    del p
    log("document svd done")
    # One space for both: the top right singular vectors of the two views side
    # by side, each token's row weighted by how much it weighs in pooled text
    # (sqrt(count) times its pooling weight).
    both = np.hstack([topical, local])
    _, _, vt = np.linalg.svd(both[~rare] * (np.sqrt(counts[~rare]) * weight[~rare])[:, None], full_matrices=False)
    vec = both @ vt[:args.dim].T
    # Each column's sign fixed (its largest entry positive), so the result
    # depends on neither solver's choice of signs.
    vec *= np.sign(vec[np.argmax(np.abs(vec), axis=0), range(args.dim)])
    vec = unit_rows(vec)
    if args.lex_dim:
        # A lexical part: a random unit vector per token (every token, seen
        # or not), so that documents sharing rare tokens stay close as in
        # tf-idf, which the low-rank part blurs.
        lex = np.random.default_rng(args.seed).standard_normal((vec.shape[0], args.lex_dim))
        lex /= np.linalg.norm(lex, axis=1, keepdims=True)
        lex[counts < args.min_count] *= 1.0 if args.lex_all else 0.0
        vec = np.hstack([vec, args.lex_weight * lex])
    return (vec * weight[:, None]).astype(np.float32), counts


def write_safetensors(path, name, arr):
    """A safetensors file of one tensor, header padded to 8 bytes as the reference does."""
    dtype = {np.float16: "F16", np.float32: "F32"}[arr.dtype.type]
    header = json.dumps({name: {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [0, arr.nbytes]}},
                        separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)))
        f.write(header)
        f.write(np.ascontiguousarray(arr).astype("<" + arr.dtype.str[1:]).tobytes())


def write_folder(out, tokenizer, table, stats, args, corpus_tokens):
    os.makedirs(os.path.join(out, "0_StaticEmbedding"), exist_ok=True)
    os.makedirs(os.path.join(out, "1_Normalize"), exist_ok=True)
    write_safetensors(os.path.join(out, "0_StaticEmbedding", "model.safetensors"), "embedding.weight",
                      table.astype(np.float16))
    tok = json.load(open(tokenizer, encoding="utf-8"))
    tok["truncation"] = {"direction": "Right", "max_length": args.max_length, "strategy": "LongestFirst", "stride": 0}
    tok["padding"] = None
    with open(os.path.join(out, "0_StaticEmbedding", "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False, separators=(",", ":"))
    modules = [
        {"idx": 0, "name": "0", "path": "0_StaticEmbedding", "type": "sentence_transformers.models.StaticEmbedding"},
        {"idx": 1, "name": "1", "path": "1_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    with open(os.path.join(out, "modules.json"), "w") as f:
        json.dump(modules, f, indent=2)
        f.write("\n")
    with open(os.path.join(out, "config_sentence_transformers.json"), "w") as f:
        json.dump({"__version__": {"embedd_train_static": "1"}, "prompts": {}, "default_prompt_name": None,
                   "similarity_fn_name": "cosine"}, f, indent=2)
        f.write("\n")
    settings = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in sorted(vars(args).items())
                        if k in ("dim", "window", "doc_length", "alpha", "shift", "power", "remove_pcs", "sif", "min_count",
                                 "svd_iter", "seed", "max_length", "lex_dim", "lex_weight", "lex_all"))
    lines = [
        "embedd-static-wordpiece: a static embedding model (one vector per WordPiece token, mean-pooled)",
        "written by embedd's scripts/train_static.py, trained on this machine; no pretrained model,",
        "no Hugging Face data and no evaluation documents were used.",
        "",
        f"Settings: {settings}",
        f"Training text: {corpus_tokens} WordPiece tokens, one line per paragraph, from these Debian packages:",
        "",
    ]
    for pkg, lic, nfiles, words in stats:
        lines.append(f"  {pkg}: {nfiles} files, {words} words; licence: {lic}")
    lines += [
        "",
        "The vectors are statistics of that text (co-occurrence counts reduced by SVD); they contain",
        "no text. Each package's copyright file in /usr/share/doc/PACKAGE/copyright has its full licence.",
        "",
        "0_StaticEmbedding/tokenizer.json is the tokenizer of sentence-transformers/all-MiniLM-L6-v2",
        "(Apache License 2.0), the copy in embedd's models/tokenizer/testdata/all-minilm-l6-v2.json,",
        f"with truncation set to {args.max_length} tokens and padding removed.",
        "",
    ]
    with open(os.path.join(out, "NOTICE"), "w") as f:
        f.write("\n".join(lines))


def evaluate(table, docs_path, tokenizer, work, max_length):
    """overlap@10 and Spearman of pairwise cosines against the reference vectors (judging only)."""
    from scipy.stats import spearmanr
    recs = [json.loads(line) for line in lzma.open(docs_path, "rt", encoding="utf-8")]
    src = os.path.join(work, "eval.txt")
    with open(src, "w", encoding="utf-8") as f:
        for r in recs:
            f.write(" ".join(r["text"].split()) + "\n")
    ids = wordpiece(tokenizer, src, os.path.join(work, "eval.u16"))
    ends = np.flatnonzero(ids == 0xFFFF)
    start = 0
    vecs = np.zeros((len(recs), table.shape[1]))
    for i, end in enumerate(ends):
        seq = ids[start:end][:max_length].astype(np.int64)
        start = end + 1
        v = table[seq].mean(0)
        vecs[i] = v / (np.linalg.norm(v) or 1)
    ref = np.array([r["embedding"] for r in recs])
    return overlap_spearman(vecs, ref, spearmanr)


def overlap_spearman(vecs, ref, spearmanr):
    a, b = vecs @ vecs.T, ref @ ref.T
    np.fill_diagonal(a, -np.inf)
    np.fill_diagonal(b, -np.inf)
    ta, tb = np.argsort(-a, axis=1)[:, :10], np.argsort(-b, axis=1)[:, :10]
    overlap = np.mean([len(set(x) & set(y)) / 10 for x, y in zip(ta, tb)])
    iu = np.triu_indices(len(vecs), 1)
    return overlap, spearmanr(a[iu], b[iu]).correlation


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?")
    ap.add_argument("--packages", action="store_true", help="print the Debian packages needed and exit")
    ap.add_argument("--tokenizer", default=os.path.join(ROOT, "models/tokenizer/testdata/all-minilm-l6-v2.json"))
    ap.add_argument("--work", default=os.path.join(ROOT, ".cache/static-train"))
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--window", type=int, default=5)
    ap.add_argument("--doc-length", type=int, default=256)
    ap.add_argument("--alpha", type=float, default=0.75)
    ap.add_argument("--shift", type=float, default=1.0)
    ap.add_argument("--power", type=float, default=0.0)
    ap.add_argument("--remove-pcs", type=int, default=1)
    ap.add_argument("--sif", type=float, default=3e-4)
    ap.add_argument("--min-count", type=int, default=5)
    ap.add_argument("--lex-dim", type=int, default=128)
    ap.add_argument("--lex-weight", type=float, default=1.0)
    ap.add_argument("--lex-all", type=int, default=1)
    ap.add_argument("--svd-iter", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--eval", help="judge against a minilm-real JSONL.xz (never trained on)")
    ap.add_argument("--check", help="sha256 the written model.safetensors must have")
    args = ap.parse_args()
    if args.packages:
        print(" ".join(TOOLS + [pkg for pkg, _, _ in SOURCES]))
        return
    if not args.out:
        ap.error("OUT_DIR is required")
    global np, sp
    import numpy as np
    import scipy.sparse as sp

    t0 = time.time()
    os.makedirs(args.work, exist_ok=True)
    corpus = os.path.join(args.work, "corpus.txt")
    stats_path = corpus + ".json"
    stats = json.load(open(stats_path)) if os.path.exists(stats_path) else {}
    sources = json.loads(json.dumps(SOURCES))
    if not isinstance(stats, dict) or stats.get("sources") != sources or stats.get("format") != CORPUS_FORMAT:
        # built from another list or in another layout (or never)
        stats = {"sources": sources, "format": CORPUS_FORMAT, "stats": build_corpus(corpus)}
        json.dump(stats, open(stats_path, "w"))
    stats = stats["stats"]
    ids_path = os.path.join(args.work, "corpus.u16")
    if os.path.exists(ids_path) and os.path.getmtime(ids_path) > os.path.getmtime(corpus):
        ids = np.fromfile(ids_path, dtype=np.uint16)
    else:
        ids = wordpiece(args.tokenizer, corpus, ids_path)
    vocab = len(json.load(open(args.tokenizer, encoding="utf-8"))["model"]["vocab"])
    log(f"corpus ready ({time.time() - t0:.0f} s)")
    table, counts = train(ids, vocab, args)
    log(f"trained ({time.time() - t0:.0f} s)")
    if args.eval:
        o, s = evaluate(table.astype(np.float16).astype(np.float32), args.eval, args.tokenizer, args.work,
                        args.max_length)
        log(f"eval: overlap@10 {o:.3f} spearman {s:.3f}")
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    write_folder(args.out, args.tokenizer, table, stats, args, int(counts.sum()))
    digest = hashlib.sha256(open(os.path.join(args.out, "0_StaticEmbedding", "model.safetensors"), "rb").read()).hexdigest()
    log(f"wrote {args.out} in {time.time() - t0:.0f} s; model.safetensors sha256 {digest}")
    if args.check and digest != args.check:
        sys.exit(f"train_static: sha256 {digest}, want {args.check}")


if __name__ == "__main__":
    main()
