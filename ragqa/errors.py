"""The small vocabulary of errors a user can act on.

Library code raises these; only the CLI turns them into one line and exit code 1.
Each message names the thing at fault and the fix.
"""
import re

# C0/C1 controls (ESC starts terminal sequences: window title, clear screen), line and paragraph
# separators, bidi overrides, and the lone surrogates that stand for undecodable bytes in file names
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def printable(text) -> str:
    """``text`` (from a document or a path) as one safe line: control characters become visible
    escapes, and an undecodable file-name byte shows as ``\\xe9``, as ``ls -b`` would."""
    def escape(m: re.Match) -> str:
        c = m.group()
        if "\udc80" <= c <= "\udcff":  # os.fsdecode's stand-in for a byte that is not UTF-8
            return f"\\x{ord(c) - 0xdc00:02x}"
        return c.encode("unicode_escape").decode("ascii")
    return _UNPRINTABLE.sub(escape, str(text))


class RagqaError(Exception):
    """Base class: the message is the one line shown to the user."""


class ConfigError(RagqaError):
    """A configuration value is invalid."""


class IndexNotFound(RagqaError):
    """The named index does not exist (or holds nothing yet)."""


class EmbedderMismatch(RagqaError):
    """An index is opened with an embedder other than the one it was built with."""


class IndexBusy(RagqaError):
    """Another process is writing to the same index."""


class EngineError(RagqaError):
    """The vector engine an index lives on (Milvus) is unreachable, refuses us, or holds other vectors."""


class SkippedFile(RagqaError):
    """One input file cannot be ingested; the batch goes on without it."""

    def __init__(self, path, reason: str, fix: str):
        self.path, self.reason, self.fix = str(path), reason, fix
        super().__init__(f"{printable(path)}: {printable(reason)} — {fix}")


class PartlyIngested(RagqaError):
    """One input file was ingested without some of its content (unreadable pages, a limit hit)."""

    def __init__(self, path, reason: str, fix: str):
        self.path, self.reason, self.fix = str(path), reason, fix
        super().__init__(f"{printable(path)}: {printable(reason)} — {fix}")


class GeneratorError(RagqaError):
    """The language model or its server failed while answering."""
