"""The server's encoder, loaded in a background thread from start-up.

Loading a model takes seconds (the ONNX sessions, or torch and transformers), and ``/health`` and the web page
do not need it: the server binds and answers at once while the model loads beside it. A route that needs the
model waits for it; a load that fails is raised to every such route (and stops ``polymodal serve``, run.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class EncoderLoader:
    """``load()`` run once in a daemon thread; ``get()`` waits for its encoder or raises its error."""

    def __init__(self, load: Callable[[], Any]) -> None:
        self._load = load
        self._done = threading.Event()
        self._encoder: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="polymodal-model-load")

    def start(self) -> EncoderLoader:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._encoder = self._load()
        except BaseException as exc:  # noqa: BLE001 - kept for the routes that need the model, raised there
            self._error = exc
        finally:
            self._done.set()

    def wait(self, timeout: float | None = None) -> BaseException | None:
        """Block until the load has ended (or ``timeout``); the error it raised, else None."""
        self._done.wait(timeout)
        return self._error

    @property
    def failed(self) -> BaseException | None:
        """The load's error once it has failed; None while it runs or after it succeeded."""
        return self._error if self._done.is_set() else None

    def get(self) -> Any:
        self._done.wait()
        if self._error is not None:
            raise self._error.with_traceback(None)  # raised once per request: no traceback growing each time
        return self._encoder
