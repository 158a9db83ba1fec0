"""Build the text classifiers served by ``examples/text_app.py``, deterministically.

Run from the repository root::

    python models/build_text_models.py          # writes artifacts/text-*.joblib,
                                                # text-heldout.json, text-manifest.json
    python models/build_text_models.py --check  # rebuild in a temp dir and compare

Data: the ``DESCR`` texts of scikit-learn's bundled datasets (``load_iris``, ``load_wine``,
``load_breast_cancer``, ``load_diabetes``, ``load_digits``, ``load_linnerud``); nothing is
downloaded. Each text is cut into short pieces (a sentence of its prose, a line of its field
lists and tables, at most ``MAX_WORDS`` words), labelled by the dataset it describes. A piece
found in more than one text (shared boilerplate such as ``:Missing Attribute Values: None``)
is dropped: it has no true label. A fixed-seed stratified split keeps 30% as the held-out set,
``models/text-heldout.json`` (``labels``: the class names in index order, ``text``, ``label``:
a class name per text), for tests and traffic.

Artifacts (scikit-learn pipelines saved with joblib; ``classes_`` are the class names;
``predict_proba`` gives the confidence):

* ``text-v1``        TF-IDF of word 1-2 grams (sublinear tf) + logistic regression, C=100.
* ``text-v2``        the same features, less regularised (C=300): a second good model that
  agrees with v1 on nearly every held-out text.
* ``text-regressed`` v1's recipe trained with a class-name mapping bug that swaps the labels
  of ``wine`` and ``breast_cancer`` (the two largest classes): as confident as v1, and
  disagreeing with it on about three held-out texts in four (v1 gives those two classes to
  many texts of the others too).

The pieces are short and the six descriptions share much of their vocabulary (attribute lists,
citations), so v1 gets about four held-out pieces in ten wrong: 0.58 accuracy, against 0.33 for
always answering the largest class. The held-out accuracy of each artifact, its agreement with
v1 and its sha256 are written to ``models/text-manifest.json``.
Every random draw takes a fixed seed: with the scikit-learn written in the manifest, a rebuild
gives the same bytes (``--check`` verifies it). ``joblib.load`` unpickles: load only artifacts
you trust.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

SEED = 20240611
MAX_WORDS = 12
HERE = Path(__file__).resolve().parent
# Class names in index order: the ``labels`` of a rollout spec's ``app.prediction``, and the
# class index a label posted to the feedback route gives.
LABELS = ["iris", "wine", "breast_cancer", "diabetes", "digits", "linnerud"]
SWAPPED = ("wine", "breast_cancer")  # the mapping bug of text-regressed
RECIPES: dict[str, dict[str, Any]] = {
    "text-v1": {"ngram_range": (1, 2), "C": 100.0, "swap": False},
    "text-v2": {"ngram_range": (1, 2), "C": 300.0, "swap": False},
    "text-regressed": {"ngram_range": (1, 2), "C": 100.0, "swap": True},
}
HELDOUT = "text-heldout.json"
MANIFEST = "text-manifest.json"


def pieces(descr: str) -> list[str]:
    """The pieces of one ``DESCR`` text: reStructuredText directives and rules dropped; a
    block of short lines (fields, list items, table rows) gives one piece per line, a block
    of prose one per sentence; each cut to at most ``MAX_WORDS`` words; pieces of fewer than
    three words dropped."""
    text = re.sub(r"^\.\. .*$", "", descr, flags=re.M)
    out = []
    for block in re.split(r"\n\s*\n", text):
        lines = [ln.strip() for ln in block.splitlines()
                 if not re.fullmatch(r"[\s=\-~*_.:|]*", ln)]
        if not lines:
            continue
        if (all(re.match(r"[:\-\w*]", ln) for ln in lines)
                and sum(map(len, lines)) / len(lines) < 60):
            segments = lines
        else:
            segments = re.split(r"(?<=[a-z0-9)][.!?])\s+(?=[A-Z(])", " ".join(lines))
        for seg in segments:
            words = seg.split()
            for k in range(0, len(words), MAX_WORDS):
                chunk = words[k:k + MAX_WORDS]
                if len(chunk) >= 3:
                    out.append(" ".join(chunk))
    return out


def corpus() -> tuple[list[str], list[str]]:
    """Every labelled piece, in a fixed order (by class, then text); pieces found in more than
    one description are left out."""
    from sklearn import datasets

    per = {name: sorted(set(pieces(getattr(datasets, f"load_{name}")().DESCR)))
           for name in LABELS}
    seen = Counter(p for ps in per.values() for p in ps)
    texts, labels = [], []
    for name in LABELS:
        for p in per[name]:
            if seen[p] == 1:
                texts.append(p)
                labels.append(name)
    return texts, labels


def split(texts: list[str], labels: list[str]
          ) -> tuple[list[str], list[str], list[str], list[str]]:
    from sklearn.model_selection import train_test_split

    tr_x, te_x, tr_y, te_y = train_test_split(texts, labels, test_size=0.3, stratify=labels,
                                              random_state=SEED)
    return list(tr_x), list(tr_y), list(te_x), list(te_y)


def train(recipe: dict[str, Any], texts: list[str], labels: list[str]) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    if recipe["swap"]:
        a, b = SWAPPED
        labels = [b if y == a else a if y == b else y for y in labels]
    model = make_pipeline(
        TfidfVectorizer(ngram_range=recipe["ngram_range"], sublinear_tf=True),
        LogisticRegression(C=recipe["C"], max_iter=5000),
    )
    model.fit(texts, labels)
    # A memory address the vectorizer caches to skip a check at its next fit (it reads it with
    # ``getattr(..., None)``): left in, the pickle would differ from build to build.
    vars(model.steps[0][1]).pop("_stop_words_id", None)
    return model


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {p: version(p) for p in ("numpy", "scipy", "scikit-learn", "joblib")}


def build(out_dir: Path) -> dict[str, Any]:
    """Train the three pipelines; write them, the held-out set and the manifest under
    ``out_dir`` (``artifacts/`` inside it). Returns the manifest."""
    import joblib
    import numpy as np

    tr_x, tr_y, te_x, te_y = split(*corpus())
    (out_dir / "artifacts").mkdir(parents=True, exist_ok=True)
    heldout = out_dir / HELDOUT
    heldout.write_text(json.dumps({"labels": LABELS, "text": te_x, "label": te_y},
                                  indent=1) + "\n")
    truth = np.asarray(te_y)
    preds: dict[str, np.ndarray] = {}
    artifacts: dict[str, Any] = {}
    for name, recipe in RECIPES.items():
        model = train(recipe, tr_x, tr_y)
        path = out_dir / "artifacts" / f"{name}.joblib"
        joblib.dump(model, path, compress=3)
        preds[name] = np.asarray(model.predict(te_x))
        artifacts[name] = {
            "file": f"artifacts/{name}.joblib",
            "sha256": sha256(path),
            "size_bytes": path.stat().st_size,
            "heldout_accuracy": round(float(np.mean(preds[name] == truth)), 6),
            "agreement_with_text-v1": round(float(np.mean(preds[name] == preds["text-v1"])), 6),
            "recipe": {"features": f"TfidfVectorizer(ngram_range={recipe['ngram_range']}, "
                                   "sublinear_tf=True)",
                       "classifier": f"LogisticRegression(C={recipe['C']:g}, max_iter=5000)",
                       "labels_swapped": list(SWAPPED) if recipe["swap"] else []},
        }
    counts = Counter(tr_y + te_y)
    manifest = {
        "dataset": {
            "source": "sklearn.datasets.load_<name>().DESCR for " + ", ".join(LABELS),
            "pieces": f"sentences and lines of at most {MAX_WORDS} words, unique to one text",
            "split": f"train_test_split(test_size=0.3, stratify=labels, random_state={SEED})",
            "n_train": len(tr_y),
            "n_heldout": len(te_y),
            "per_class": {name: counts[name] for name in LABELS},
            "majority_class_share": round(max(counts.values()) / sum(counts.values()), 6),
        },
        "labels": LABELS,
        "heldout": {"file": HELDOUT, "sha256": sha256(heldout)},
        "built_with": _versions(),
        "artifacts": artifacts,
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _files(root: Path) -> dict[str, bytes]:
    names = [MANIFEST, HELDOUT, *(f"artifacts/{n}.joblib" for n in RECIPES)]
    return {n: (root / n).read_bytes() for n in names if (root / n).is_file()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE,
                        help="output directory (default: models/)")
    parser.add_argument("--check", action="store_true", help="rebuild in a temp dir and compare")
    args = parser.parse_args(argv)
    if not args.check:
        manifest = build(args.out)
        for name, a in manifest["artifacts"].items():
            print(f"{name:16s} acc={a['heldout_accuracy']:.4f} "
                  f"agree_v1={a['agreement_with_text-v1']:.4f} size={a['size_bytes']} B")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        build(Path(tmp))
        new, old = _files(Path(tmp)), _files(args.out)
    differ = sorted(n for n in new.keys() | old.keys() if new.get(n) != old.get(n))
    print("byte-identical" if not differ else f"differ: {differ}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
