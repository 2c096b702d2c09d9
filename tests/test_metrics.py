import json

import pytest

from ragqa import metrics as M
from ragqa.qa_formats import load_qa


def test_token_f1_and_exact_match_follow_squad():
    # articles and punctuation go: prediction [cat, sat, on, mat] vs gold [cat, sat] -> P 1/2, R 1
    assert M.token_f1("The cat sat on the mat.", "a cat sat") == pytest.approx(2 / 3)
    assert M.exact_match("The Cat!", "cat") == 1.0 and M.exact_match("cats", "cat") == 0.0
    assert M.best(M.token_f1, "BERT", ["GPT", "bert"]) == 1.0 and M.best(M.token_f1, "x", []) is None


def test_chinese_is_scored_on_characters():
    # prediction 北京是首都 (5 chars) vs gold 首都北京 (4): 4 in common -> P 4/5, R 1
    assert M.token_f1("北京是首都", "首都北京", "zh") == pytest.approx(2 * 0.8 / 1.8)
    assert M.tokens("GPT3模型。", "zh") == ["gpt3", "模", "型"]
    assert M.exact_match("首都，北京", "首都北京", "zh") == 1.0


def test_rouge_bleu_and_retrieval_metrics():
    assert M.rouge_l("the cat sat", "the cat sat on the mat") == pytest.approx(2 / 3)  # LCS 3: P 1, R 1/2
    assert M.bleu("masked language modelling and next sentence prediction",
                  "masked language modelling and next sentence prediction") == pytest.approx(1.0)
    assert M.bleu("completely different words here", "masked language modelling") < 0.1
    retrieved = ["/papers/gpt.pdf", "/papers/bert.pdf"]
    assert (M.doc_hit(retrieved, "bert.pdf", 1), M.doc_hit(retrieved, "bert.pdf", 2)) == (0.0, 1.0)
    assert M.reciprocal_rank(retrieved, "bert.pdf") == 0.5 and M.reciprocal_rank(retrieved, "t5.pdf") == 0.0


def test_bootstrap_is_reproducible_and_brackets_the_mean():
    values = [1, 0, 1, 1, 0, 1, 1, 1]
    first, again = M.bootstrap_ci(values, seed=3), M.bootstrap_ci(values, seed=3)
    assert first == again and first[0] == 0.75 and 0 <= first[1] < 0.75 < first[2] <= 1
    assert M.bootstrap_ci([0.5] * 10) == (0.5, 0.5, 0.5)
    assert M.paired_bootstrap([1, 1, 1], [0, 0, 0]) == {"diff": 1.0, "lo": 1.0, "hi": 1.0, "p": 0.0}


def test_mcnemar_exact():
    assert M.mcnemar([True] * 5, [False] * 5) == {"wins": 5, "losses": 0, "p": 0.0625}  # 2 * (1/2)^5
    assert M.mcnemar([True, False], [True, False])["p"] == 1.0


def test_question_formats_and_malformed_lines(tmp_path):
    path = tmp_path / "qa.jsonl"
    lines = [
        {"question": "What are BERT's pre-training tasks?", "answer": "MLM and NSP", "source_pdf": "bert.pdf"},
        {"question": "Which datasets?", "doc_id": "1810.04805",
         "answers": [{"free_form_answer": "", "extractive_spans": ["SQuAD", "GLUE"]}, {"yes_no": True}]},
        "{not json",
        {"answer": "no question here"},
        {"question": "Pick one", "choices": ["red", "blue"], "answer_index": 1},
    ]
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    items, problems = load_qa(path)
    assert [i.question for i in items] == ["What are BERT's pre-training tasks?", "Which datasets?", "Pick one"]
    assert items[0].doc == "bert.pdf" and not items[0].scoped
    assert items[1].answers == ["SQuAD GLUE", "Yes"] and items[1].scoped and items[1].doc == "1810.04805"
    assert items[2].choices == ["red", "blue"] and items[2].gold_choice == 1
    assert [p.split(": ")[0] for p in problems] == [f"{path}:3", f"{path}:4"]


def test_cmrc2018_squad_layout(tmp_path):
    data = {"data": [{"paragraphs": [{"context": "北京是中国的首都。", "qas": [
        {"id": "c1", "question": "中国的首都是哪里？", "answers": [{"text": "北京", "answer_start": 0}]}]}]}]}
    path = tmp_path / "cmrc.json"
    path.write_text(json.dumps(data, ensure_ascii=False))
    items, problems = load_qa(path)
    assert problems == [] and [(i.id, i.answers, i.lang) for i in items] == [("c1", ["北京"], "zh")]


def test_cmrc2018_jsonl_of_the_eval_corpus_names_the_passage_and_pools_it(tmp_path):
    path = tmp_path / "cmrc_qa.jsonl"
    path.write_text('{"id": "T_1_Q0", "passage_id": "TRIAL_1", "title": "泡泡战士", "question": "生命数耗完即算为什么？", '
                    '"answers": ["踢爆"]}\n{"id": "T_1_Q1", "passage_id": "TRIAL_1"}\n', encoding="utf-8")
    items, problems = load_qa(path)
    assert [(i.doc, i.scoped, i.lang, i.answers) for i in items] == [("TRIAL_1", False, "zh", ["踢爆"])]
    assert problems == [f"{path}:2: skipped (KeyError: 'question')"]  # reported by line number
