"""spaCy's rule-based word tokenizer for a language, and the inverse rules that detokenize its words.

`spacy_tokenizer(lang)` is a blank pipeline's tokenizer (no model download). `word_joins` says which
neighbouring words spaCy split from one another, so generated words are joined back without the
spaces their text never had ("do n't" -> "don't", "( 1968 )" -> "(1968)").
"""

from __future__ import annotations

from nlp_lstm.errors import NlpLstmError

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
