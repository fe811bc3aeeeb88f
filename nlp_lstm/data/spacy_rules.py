"""spaCy's rule-based word tokenizer for a language, and the inverse rules that detokenize its words.

`spacy_tokenizer(lang)` is a blank pipeline's tokenizer (no model download); `bound_chunks(text)` is
what it must be given instead of the raw text, so its work stays linear in the text's length.
`word_joins` says which neighbouring words spaCy split from one another, so generated words are
joined back without the spaces their text never had ("do n't" -> "don't", "( 1968 )" -> "(1968)").
"""

from __future__ import annotations

import re

from nlp_lstm.errors import NlpLstmError

# spaCy strips prefixes and suffixes from a whitespace-free chunk one at a time, and each strip
# re-scans the rest of the chunk (slicing, `token_match`, `url_match`): a chunk of n affix
# characters costs O(n^2) (`"(" * 10_000` took 11 s, `"$" * 10_000` 21 s). So a run of more than
# MAX_SYMBOL_RUN punctuation/symbol characters (neither letter, digit nor space) is cut into pieces
# of that many, and a chunk longer than MAX_CHUNK characters into pieces of MAX_CHUNK, with a space
# between pieces: then no chunk spaCy sees is long and the work per character is bounded (100 KB of
# any one character: about 0.05 s, of a random punctuation mix 0.5 s). Text without such runs or
# chunks (ordinary text: words, URLs up to MAX_CHUNK characters) is tokenized exactly as before;
# runs of single-character punctuation ("!!!!...", "((((...") give the same tokens as before too.
MAX_SYMBOL_RUN = 16
MAX_CHUNK = 200
# Matched only where a run or chunk starts (the lookbehind), so finding them is linear as well.
_LONG_SYMBOL_RUN = re.compile(r"(?<![^\w\s])[^\w\s]{%d,}" % (MAX_SYMBOL_RUN + 1))
_LONG_CHUNK = re.compile(r"(?<!\S)\S{%d,}" % (MAX_CHUNK + 1))


def _pieces(size: int):
    def cut(match: re.Match) -> str:
        run = match.group()
        return " ".join(run[start : start + size] for start in range(0, len(run), size))

    return cut


_CUT_SYMBOL_RUN, _CUT_CHUNK = _pieces(MAX_SYMBOL_RUN), _pieces(MAX_CHUNK)


def bound_chunks(text: str) -> str:
    """`text` with long punctuation runs and long whitespace-free chunks cut by spaces (see above)."""
    if len(text) <= MAX_SYMBOL_RUN:
        return text
    return _LONG_CHUNK.sub(_CUT_CHUNK, _LONG_SYMBOL_RUN.sub(_CUT_SYMBOL_RUN, text))

_SPACY_PIPELINES: dict[str, object] = {}


def spacy_tokenizer(lang: str):
    """spaCy's rule-based tokenizer for `lang` (a blank pipeline: no model download)."""
    if lang not in _SPACY_PIPELINES:
        import spacy

        try:
            _SPACY_PIPELINES[lang] = spacy.blank(lang)
        except ImportError as error:  # Thai, Japanese, Korean, ...: spaCy needs a segmenter package
            raise NlpLstmError(
                f"spaCy's {lang!r} tokenizer needs a package that is not installed ({str(error).strip().splitlines()[0]}); "
                "install it, or use --tokenizer-kind sentencepiece, which needs no word segmenter"
            ) from None
        except Exception as error:  # spaCy raises ValueError/KeyError for unknown codes
            raise NlpLstmError(
                f"unknown spaCy language {lang!r} ({type(error).__name__}); "
                "give an ISO code spaCy supports, e.g. 'en', 'de', 'xx' (multi-language)"
            ) from None
    return _SPACY_PIPELINES[lang].tokenizer


# Detokenization: which neighbouring words spaCy's rule-based tokenizer split from one another.
# spaCy splits suffixes (closing punctuation, clitics) off the word before, prefixes (opening
# brackets, currency) off the word after, and infixes (a hyphen or slash between letters:
# "well-known") out of the middle; joining those back restores the text for common English.
_ATTACH_TO_PREVIOUS = frozenset(
    [",", ".", ";", ":", "!", "?", ")", "]", "}", "%", "...", "…", "”", "’", "»",
     "n't", "n’t", "'s", "'re", "'ve", "'ll", "'d", "'m", "’s", "’re", "’ve", "’ll", "’d", "’m"]
)
_ATTACH_TO_NEXT = frozenset(["(", "[", "{", "$", "£", "€", "¥", "#", "“", "‘", "«", "¿", "¡"])
_INFIXES = frozenset(["-", "–", "—", "/", "~"])  # in the corpus mostly unspaced between words
# Words spaCy's English exceptions split without an apostrophe ("cannot" -> "can", "not").
_SPLIT_WORDS = frozenset([("can", "not"), ("gon", "na"), ("got", "ta"), ("wan", "na")])


def word_joins(tokens: list[str], splits_into) -> list[bool]:
    """`joins[i]`: whether `tokens[i]` follows `tokens[i - 1]` with no space (`joins[0]` is False).

    A join needs a rule (the module constants above) and `splits_into(*words)`: spaCy must split
    the joined text back into exactly those words, so that `tokenize(detokenize(words)) == words`.
    Straight quotes alternate: `"` opens (joins the next word) and then closes (joins the previous);
    `'` closes an open one, marks a plural possessive after a word ending in "s" ("players'"), or
    opens.
    """
    joins = [False] * len(tokens)
    quote_open = {'"': False, "'": False}
    attach_next = False
    index = 1 if tokens else 0
    if tokens and tokens[0] in quote_open:
        quote_open[tokens[0]] = attach_next = True
    while index < len(tokens):
        previous, token = tokens[index - 1], tokens[index]
        following = tokens[index + 1] if index + 1 < len(tokens) else ""
        rule, opens = attach_next, False
        if token in quote_open:
            if quote_open[token]:
                rule, quote_open[token] = True, False
            elif token == "'" and previous[-1:] in ("s", "S"):
                rule = True
            else:
                opens = quote_open[token] = True
        elif previous in _ATTACH_TO_NEXT or token.lower() in _ATTACH_TO_PREVIOUS:
            rule = True
        elif (previous.lower(), token.lower()) in _SPLIT_WORDS:
            rule = True
        elif token in _INFIXES and previous[-1:].isalnum() and following[:1].isalnum():
            # spaCy splits an infix only between letters/digits: both sides join, or neither.
            if splits_into(previous, token, following):
                joins[index] = joins[index + 1] = True
            index += 2
            attach_next = False
            continue
        joins[index] = rule and splits_into(previous, token)
        attach_next = opens
        index += 1
    return joins
