"""ragqa: question answering over research papers and technical blogs, on your own machine."""

__version__ = "0.1.0"
