"""A small corpus of paper-like Markdown notes for the training-data tests (six documents, so the
document-level split has validation and test documents)."""
from __future__ import annotations

TOPICS = [
    ("BERT", "bidirectional encoder", "masked language modelling", 12, "layers", "GLUE", 80.5),
    ("LoRA", "low-rank adaptation method", "frozen pretrained weights", 8, "ranks", "E2E", 70.4),
    ("RAG", "retrieval augmented generator", "retrieved Wikipedia passages", 5, "passages", "NaturalQuestions", 44.5),
    ("ViT", "vision transformer", "image patches of 16 pixels", 24, "blocks", "ImageNet", 88.6),
    ("T5", "text-to-text transformer", "span corruption objective", 11, "billion", "SuperGLUE", 90.3),
    ("DPO", "direct preference optimization", "pairwise preference data", 3, "epochs", "AlpacaEval", 61.2),
]


def paper(name, what, trained, count, unit, bench, score) -> str:
    return (f"# {name}: a study\n\n## Method\n\n"
            f"{name} is a {what} that is trained with {trained} on large unlabeled corpora. "
            f"The {name} base model uses {count} {unit} in every stage of the network. "
            f"We train {name} with a learning rate schedule that warms up over the first steps of training.\n\n"
            f"## Results\n\n"
            f"On the {bench} benchmark {name} reaches {score}% accuracy across the tasks studied. "
            f"Ablations show that {name} depends on {trained} more than on model size. "
            f"The {name} authors release their code and checkpoints for further research.\n\n"
            f"## Acknowledgements\n\nWe thank our colleagues and the reviewers for their helpful comments on drafts.\n")


def write_corpus(folder, topics=TOPICS):
    folder.mkdir(parents=True, exist_ok=True)
    for t in topics:
        (folder / f"{t[0].lower()}.md").write_text(paper(*t))
    return folder
