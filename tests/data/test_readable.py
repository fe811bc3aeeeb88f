"""Readable summaries (nlp_lstm/data/readable.py): whole words and written case, from the training
lexicon and the source, worked out by hand."""

import pytest

from nlp_lstm.data.readable import build_lexicon, load_lexicon, readable_summary
from nlp_lstm.errors import NlpLstmError

SOURCE = "2001: A Space Odyssey is a 1968 epic science fiction film produced and directed by Stanley Kubrick."
TEXTS = ["The Danube is the second-longest river in Europe.", "An American film by a director.",
         "It flows into the Mississippi River and the Ohio River, then a small river.", "Ku is a name."]
LEXICON = build_lexicon(TEXTS, ["1968 film by Stanley Kubrick", "River in Europe", "American actor", "Ancient city"])


def test_a_cut_short_copy_completes_to_its_source_word_and_a_stray_piece_is_dropped():
    # "ku" is a word of the training texts, but short, rare and not in this source, which has a
    # longer word it begins: a copy cut short. "byn" is no word; its longest prefix that is one is "by".
    assert readable_summary("1968 epic fiction film byn ku", SOURCE, LEXICON, restore_case=True) == \
        "1968 epic fiction film by Kubrick"


def test_a_common_word_is_never_completed_to_a_longer_source_word():
    lexicon = build_lexicon(["a film by them"] * 30, ["a film"])
    assert readable_summary("film by", "Bystanders filmmaker", lexicon, restore_case=False) == "film by"


def test_the_source_decides_the_case_where_it_has_the_word_mid_sentence():
    source = "The Danube is the second-longest river in Europe, after the Volga in Russia."
    # "second-longest", "river" mid-sentence in the source; "europe" too; the first capital from the habit.
    assert readable_summary("second-longest river in europe", source, LEXICON, restore_case=True) == \
        "Second-longest river in Europe"


def test_the_lexicon_keeps_a_word_lower_case_when_it_often_is():
    # "river" is written "River" twice (names) and "river" twice mid-sentence: lower-case a third of
    # the time or more, so it stays lower-case; "american" only ever capitalised.
    assert LEXICON.forms["river"] == "river" and LEXICON.forms["american"] == "American"
    assert readable_summary("an american river", "", LEXICON, restore_case=True) == "An American river"


def test_a_sentence_initial_capital_in_the_source_is_not_taken_for_a_name():
    source = "Boats sail here. Many boats are small."
    assert readable_summary("small boats", source, LEXICON, restore_case=True) == "Small boats"
    assert readable_summary("many sail", source, LEXICON, restore_case=True) == "Many sail"


def test_without_case_restoring_only_the_words_are_repaired():
    assert readable_summary("film byn ku", SOURCE, LEXICON, restore_case=False) == "film by kubrick"


def test_numbers_punctuation_and_unknown_junk():
    # A number is a word; "zq" has no known prefix and begins no source word: dropped.
    assert readable_summary("2,001 film zq, by", SOURCE, LEXICON, restore_case=False) == "2,001 film by"


def test_capitalising_follows_the_training_summaries():
    lower = build_lexicon(["a text"], ["lower case summary", "another one"])
    assert not lower.capitalize_first and LEXICON.capitalize_first
    assert readable_summary("another one", "", lower, restore_case=True) == "another one"


def test_the_lexicon_round_trips_through_its_file(tmp_path):
    LEXICON.save(tmp_path)
    again = load_lexicon(tmp_path)
    assert again.forms == LEXICON.forms and again.counts == LEXICON.counts
    assert again.capitalize_first == LEXICON.capitalize_first
    assert load_lexicon(tmp_path / "elsewhere") is None
    (tmp_path / "lexicon.json").write_text('{"words": ["no counts"]}')
    with pytest.raises(NlpLstmError, match="not a summary lexicon"):
        load_lexicon(tmp_path)
