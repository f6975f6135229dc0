"""What the typo mender does to a shop's own words, with and without the catalog's words known.

    source scripts/env.sh && .venv/bin/python -m bench.catalog_spelling

Why: a shopper names what the shop sells in the shop's words: brands and product lines
("Gini & Jony", "Hanes"), local garments ("anarkali"), styles ("boho"). No English list knows
them all, and the mender (``model.spelling``) changes a word it does not know into a known one
one edit away. The indexer records each catalog's words with its build and the app hands them
to the mender (``Retriever.use_catalog_words``). For each catalog (a CSV of its items and the
columns the indexer would store as title, category and attributes) this counts, without and
with the catalog's words known:

- **kept**: the share of the catalog's distinct words (of ``MIN_LENGTH`` letters or more) the
  mender leaves as typed (with the catalog's words known, all but those one edit from a
  training caption's word, which ``with_catalog`` takes for the catalog's own misspellings);
- **shop words mended back**: the catalog's words that the checkpoint's own lists do not know,
  each typed with one slip (``bench.retyping.with_typos``), the share mended back to the word;
- **caption words mended back**: the same for the training captions' words, which catalog words
  must not steal (a typo of "shirt" must not become a catalog's "skirt");
- **captions changed**: distinct training captions (typed right) that the mender changes at all:
  0 is the mender's promise, and a catalog's words must not break it.

Writes bench/results/catalog_spelling/<fingerprint>.json.
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from bench._common import RESULTS, machine_line, run_benchmark, table
from bench.retyping import MIN_TYPO_LENGTH, with_typos
from project_settings import DEFAULT_CHECKPOINT

# name -> (CSV of the catalog's items, the columns the indexer would store)
CATALOGS = {
    "fashion-products": ("../shared/data/fashion-products/products.csv",
                         ("title", "gender", "type", "color", "pattern")),
    "hm": ("../shared/data/hm/articles.csv",
           ("prod_name", "product_type_name", "product_group_name", "graphical_appearance_name",
            "colour_group_name", "perceived_colour_value_name", "perceived_colour_master_name",
            "department_name", "index_group_name", "section_name", "garment_group_name")),
}


@dataclass
class CatalogSpellingConfig:
    checkpoint: str = DEFAULT_CHECKPOINT
    catalogs: list[str] = field(default_factory=lambda: list(CATALOGS))
    # The checkpoint's training datasets; None: the shipped checkpoint's recipe's (recipes/demo).
    datasets: list[str] | None = None
    seed: int = 0
    out_dir: str = str(RESULTS)


def recipe_datasets() -> list[str]:
    from model.recipe import Chain, Recipe

    return Chain(Recipe.load("demo")).dataset_specs()


def catalog_texts(name: str) -> list[str]:
    """Every non-empty cell of the catalog's stored columns."""
    path, columns = CATALOGS[name]
    with open(path, newline="", encoding="utf-8") as f:
        return [row[c] for row in csv.DictReader(f) for c in columns if row.get(c)]


def mended_back(mender, words: Sequence[str], seed: int) -> float:
    """Percent of ``words``, each typed with one slip, that ``mender`` turns back into it."""
    typed = [(w, with_typos(w, 1.0, seed)) for w in words]
    return 100 * sum(mender.word(t) == w for w, t in typed) / max(len(typed), 1)


def measure(mender, texts: Sequence[str], captions: Sequence[str], caption_vocab: Sequence[str],
            seed: int) -> dict:
    from model.spelling import catalog_words

    known = catalog_words(texts)
    words = sorted(w for w in known if w.isascii())
    shop = mender.with_catalog(known)
    unknown = [w for w in words if not mender.known(w) and len(w) >= MIN_TYPO_LENGTH]
    row = {"words": len(words), "shop_words": len(unknown)}
    for name, m in (("without", mender), ("with", shop)):
        row[name] = {
            "kept": 100 * sum(m.word(w) == w for w in words) / len(words),
            "shop_words_mended_back": mended_back(m, unknown, seed),
            "caption_words_mended_back": mended_back(m, caption_vocab, seed),
            "captions_changed": sum(m(c) != c for c in captions),
        }
    return row


def run(cfg: CatalogSpellingConfig) -> dict:
    from model import load_retriever
    from model.spelling import training_captions

    retriever = load_retriever(cfg.checkpoint)
    mender = retriever.spelling
    if mender is None:
        raise SystemExit(f"{cfg.checkpoint} has no caption words: python -m model.spelling")
    captions = sorted(set(training_captions(cfg.datasets or recipe_datasets())))
    caption_vocab = sorted(w for w in mender.caption_words
                           if len(w) >= MIN_TYPO_LENGTH and w.isascii())
    rows = {name: measure(mender, catalog_texts(name), captions, caption_vocab, cfg.seed)
            for name in cfg.catalogs}
    print(f"# {machine_line()}")
    print(f"{len(captions):,} distinct training captions, {len(caption_vocab)} caption words of "
          f"{MIN_TYPO_LENGTH}+ letters; without / with the catalog's words known")
    print(table([(name, r["words"], r["shop_words"],
                  *(f"{r['without'][k]:.1f} / {r['with'][k]:.1f}"
                    for k in ("kept", "shop_words_mended_back", "caption_words_mended_back")),
                  f"{r['without']['captions_changed']} / {r['with']['captions_changed']}")
                 for name, r in rows.items()],
                ["catalog", "words", "shop words", "kept %", "shop words mended back %",
                 "caption words mended back %", "captions changed"]))
    return {"config": asdict(cfg), "fingerprint": retriever.fingerprint,
            "distinct_captions": len(captions), "caption_words": len(caption_vocab),
            "catalogs": rows}


def parse_args(argv: Sequence[str]) -> CatalogSpellingConfig:
    d = CatalogSpellingConfig()
    p = argparse.ArgumentParser(prog="python -m bench.catalog_spelling", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=d.checkpoint)
    p.add_argument("--catalogs", nargs="+", default=d.catalogs, choices=list(CATALOGS))
    p.add_argument("--datasets", nargs="+", default=d.datasets, metavar="ANN[:IMAGES]",
                   help="the checkpoint's training datasets, whose captions are checked "
                        "(default: those of recipes/demo.json)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--out-dir", default=d.out_dir)
    return CatalogSpellingConfig(**vars(p.parse_args(argv)))


def main(argv: Sequence[str] | None = None) -> None:
    run_benchmark("catalog_spelling", argv, parse_args, run)


if __name__ == "__main__":
    main()
