"""Predicate-argument sequences derived from gold dependency trees: a *syntactic proxy* for semantic
role labelling, not SRL.

He et al. 2017 (sec. 2) tag SRL with a BiLSTM as one sequence per predicate: the sentence's tokens,
a 0/1 indicator marking the predicate's position (here its word: the verb and the inflectional
groups attached to it), and the arguments as BIO spans labelled with their
roles. No annotated SRL corpus is reachable here (PropBank, OntoNotes, CoNLL-2005), so the same
formulation is filled from a treebank's gold dependencies: for each verb (UPOS VERB, not attached as
an inflectional group `ig` of a longer word, with at least one argument), each of its dependents is an "argument" whose label is
its dependency relation and whose span is the dependent's subtree (which takes in the inflectional
groups of its word). The labels are syntactic relations (nsubj, dobj, advmod ...), not roles.

Spans: a subtree that is not contiguous, or that would cover the predicate, is cut to the dependent
token alone. Punctuation (`p`, `punct`) and inflectional-group (`ig`) dependents are not arguments.
"""

from __future__ import annotations

from nlp_lstm.data.conll import TaggedCorpus, conllu_sentences

NOT_ARGUMENTS = ("ig", "p", "punct")
NOT_PREDICATES = ("ig",)  # a verb stem inside a longer word: the word's last group is its head


def _subtree(heads: list[int], root: int) -> list[int]:
    """Positions (0-based) under `root` (0-based), root included."""
    children: dict[int, list[int]] = {}
    for position, head in enumerate(heads):
        children.setdefault(head - 1, []).append(position)
    found, stack = [], [root]
    while stack:
        node = stack.pop()
        found.append(node)
        stack += children.get(node, [])
    return sorted(found)


def predicate_argument_corpus(path) -> TaggedCorpus:
    """One sequence per predicate of each sentence of a CoNLL-U file (module doc): tokens, BIO tags
    of the predicate's dependents labelled by relation, and the predicate indicator as the feature."""
    corpus = TaggedCorpus([], [], [])
    for rows in conllu_sentences(path):
        tokens = [fields[1] for _, fields in rows]
        heads = [int(fields[6]) if fields[6].isdigit() else 0 for _, fields in rows]
        relations = [fields[7].split(":")[0] for _, fields in rows]
        for predicate, (_, fields) in enumerate(rows):
            if fields[3] != "VERB" or relations[predicate] in NOT_PREDICATES:
                continue
            word = {predicate}  # the predicate's word: it and the inflectional groups attached to it
            for position in range(predicate - 1, -1, -1):
                if relations[position] == "ig" and heads[position] - 1 in word:
                    word.add(position)
            tags = ["O"] * len(tokens)
            for dependent in range(len(tokens)):
                if heads[dependent] - 1 != predicate or relations[dependent] in NOT_ARGUMENTS or dependent in word:
                    continue
                covered = _subtree(heads, dependent)
                start, end = covered[0], covered[-1] + 1
                if len(covered) != end - start or any(start <= position < end for position in word):
                    start, end = dependent, dependent + 1
                # A span is then exactly its dependent's subtree (or the dependent alone), and the
                # subtrees of two dependents are disjoint: spans never overlap.
                tags[start] = f"B-{relations[dependent]}"
                for position in range(start + 1, end):
                    tags[position] = f"I-{relations[dependent]}"
            if all(tag == "O" for tag in tags):
                continue  # a verb without arguments (most often a stem inside a longer word) is no predicate
            corpus.tokens.append(tokens)
            corpus.tags.append(tags)
            corpus.features.append([int(position in word) for position in range(len(tokens))])
    return corpus
