"""Readable summaries (nlp_lstm/data/readable.py): whole words and written case, from the training
lexicon and the source, worked out by hand."""

from nlp_lstm.data.readable import build_lexicon, load_lexicon, readable_summary

SOURCE = "2001: A Space Odyssey is a 1968 epic science fiction film produced and directed by Stanley Kubrick."
LEXICON = build_lexicon(["The Danube is the second-longest river in Europe.", "An American film by a director."],
                        ["1968 film by Stanley Kubrick", "River in Europe", "American actor", "Ancient city"])


def test_a_cut_short_copy_completes_to_its_source_word_and_a_stray_piece_is_dropped():
    # "ku" begins only "kubrick" in the source; "byn" is no word, its longest prefix that is one is "by".
    assert readable_summary("1968 epic fiction film byn ku", SOURCE, LEXICON, restore_case=True) == \
        "1968 epic fiction film by Kubrick"


def test_words_take_their_written_form_from_the_lexicon_then_the_source():
    source = "The Tisza flows through Hungary. The river is long."
    # "river"/"europe" from the lexicon; "tisza", "hungary" only from the source (mid-sentence forms).
    assert readable_summary("river in europe by tisza in hungary", source, LEXICON, restore_case=True) == \
        "River in Europe by Tisza in Hungary"


def test_a_sentence_initial_capital_in_the_source_is_not_taken_for_a_name():
    source = "Boats sail here. Many boats are small."
    assert readable_summary("boats", source, LEXICON, restore_case=True) == "Boats"  # first capital only
    assert readable_summary("small boats", source, LEXICON, restore_case=True) == "Small boats"


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
    assert again.forms == LEXICON.forms and again.capitalize_first == LEXICON.capitalize_first
    assert load_lexicon(tmp_path / "elsewhere") is None
