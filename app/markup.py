"""Catalog and shopper text shown as text: never as Markdown, HTML, LaTeX or emoji codes.

Why: titles and attributes come from a store's metadata file, feedback and file names from
shoppers; the page renders most text through Streamlit's Markdown (titles in bold, captions),
so a title holding ``**``, ``# ``, ``[link](...)``, ``<b>``, ``$x$``, ``:red[...]`` or
``:smile:`` used to change the page. :func:`plain` escapes every character Markdown (and
Streamlit's directives) could read as syntax; :func:`clip` keeps a 10,000-character field from
swallowing the page.
"""

from __future__ import annotations

import re
import unicodedata

# ASCII punctuation: CommonMark lets any of it be backslash-escaped, and every character that
# starts syntax (emphasis, headings, lists, links, tables, HTML, LaTeX, directives) is in it.
_PUNCTUATION = re.compile(r"([!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])")
# Streamlit turns :name: into an emoji or icon after parsing, so escaping cannot stop it; a
# zero-width space after the colon breaks the code without changing what is shown.
_SHORTCODE = re.compile(r":(?=[\w+\-/])")
_WHITESPACE = re.compile(r"\s+")

DISPLAY_CHARS = 160  # longest catalog title or attribute shown on a card


def clip(text: str, limit: int = DISPLAY_CHARS) -> str:
    """``text`` cut to ``limit`` characters at most, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def single_line(text: object) -> str:
    """Control and format characters (newlines, NUL, bidi overrides) become spaces or vanish,
    whitespace collapses: one line of visible text."""
    out = []
    for ch in str(text):
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cs", "Zl", "Zp"):
            out.append(" ")
        elif cat == "Cf" and ch not in "\u200c\u200d" and not 0xE0020 <= ord(ch) <= 0xE007F:
            continue  # bidi overrides, zero-width spaces; keep emoji joiners and tag letters
        else:
            out.append(ch)
    return _WHITESPACE.sub(" ", "".join(out)).strip()


def plain(text: object, limit: int | None = DISPLAY_CHARS) -> str:
    """``text`` as one clipped line, escaped so that Streamlit's Markdown shows it literally."""
    line = single_line(text)
    if limit is not None:
        line = clip(line, limit)
    return _PUNCTUATION.sub(r"\\\1", _SHORTCODE.sub(":\u200b", line))
