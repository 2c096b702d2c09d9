"""The Gradio chat over your indexes (``ragqa serve``). Gradio is imported only when building the app."""
from ui.app import ChatBackend, build_app, serve

__all__ = ["ChatBackend", "build_app", "serve"]
