"""Text helpers shared by every layer: sentence splitting and stopwords (base layer, no stage imports)."""
from __future__ import annotations

import re

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[\"“])|\n\s*")  # line breaks end headings too
STOPWORDS = frozenset("""a about above after again all also am an and any are as at be because been before
being below between both but by can could did do does doing down during each few for from further had
has have having he her here hers him his how i if in into is it its itself just me more most my no nor
not of off on once only or other our out over own same she should so some such than that the their them
then there these they this those through to too under until up very was we were what when where which
while who whom why will with would you your explain describe define mean means meaning compare
difference differences between use used using paper papers work works does role purpose main""".split())


def split_sentences(text: str) -> list[str]:
    """Sentences (and heading lines) of ``text``, each on one line; used for excerpts, citations and cuts."""
    return [" ".join(s.split()) for s in _SENTENCE.split(text) if len(s.strip()) > 1]
