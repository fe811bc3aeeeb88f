"""The predicate-argument proxy from dependency trees, on hand-made trees."""

from nlp_lstm.data.predicates import predicate_argument_corpus

# "Ali büyük evi gördü ." with gör+dü split into two inflectional groups, and a second verb:
# Ali <-nsubj- dü, büyük <-amod- evi <-dobj- dü, gör <-ig- dü, . <-p- dü; "koştu" a conj of dü.
TREE = """# sent_id = t1
1\tAli\tAli\tPROPN\t_\t_\t5\tnsubj\t_\t_
2\tbüyük\tbüyük\tADJ\t_\t_\t3\tamod\t_\t_
3\tevi\tev\tNOUN\t_\t_\t5\tdobj\t_\t_
4\tgör\tgör\tVERB\t_\t_\t5\tig\t_\tSpaceAfter=No
5\tdü\t_\tVERB\t_\t_\t0\troot\t_\t_
6\tve\tve\tCONJ\t_\t_\t7\tcc\t_\t_
7\tkoştu\tkoş\tVERB\t_\t_\t5\tconj\t_\t_
8\t.\t.\tPUNCT\t_\t_\t5\tp\t_\t_
"""


def test_one_sequence_per_predicate_with_dependents_as_spans(tmp_path):
    path = tmp_path / "t.conllu"
    path.write_text(TREE, encoding="utf-8")
    corpus = predicate_argument_corpus(path)
    # "gör" is an inflectional group of "gördü": not a predicate of its own; "koştu" has one argument
    assert len(corpus) == 2
    assert corpus.tokens[0] == ["Ali", "büyük", "evi", "gör", "dü", "ve", "koştu", "."]
    assert corpus.tags[0] == ["B-nsubj", "B-dobj", "I-dobj", "O", "O", "B-conj", "I-conj", "O"]
    assert corpus.features[0] == [0, 0, 0, 1, 1, 0, 0, 0]
    assert corpus.tags[1] == ["O", "O", "O", "O", "O", "B-cc", "O", "O"]
    assert corpus.features[1] == [0, 0, 0, 0, 0, 0, 1, 0]


def test_a_verb_without_arguments_is_no_predicate(tmp_path):
    path = tmp_path / "u.conllu"
    path.write_text("1\tGel\tgel\tVERB\t_\t_\t0\troot\t_\t_\n2\t.\t.\tPUNCT\t_\t_\t1\tp\t_\t_\n", encoding="utf-8")
    assert len(predicate_argument_corpus(path)) == 0
