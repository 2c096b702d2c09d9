"""The small vocabulary of errors a user can act on.

Library code raises these; only the CLI turns them into one line and exit code 1.
Each message names the thing at fault and the fix.
"""


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


class SkippedFile(RagqaError):
    """One input file cannot be ingested; the batch goes on without it."""

    def __init__(self, path, reason: str, fix: str):
        self.path, self.reason, self.fix = str(path), reason, fix
        super().__init__(f"{path}: {reason} — {fix}")


class PartlyIngested(RagqaError):
    """One input file was ingested without some of its content (unreadable pages, a limit hit)."""

    def __init__(self, path, reason: str, fix: str):
        self.path, self.reason, self.fix = str(path), reason, fix
        super().__init__(f"{path}: {reason} — {fix}")


class GeneratorError(RagqaError):
    """The language model or its server failed while answering."""
