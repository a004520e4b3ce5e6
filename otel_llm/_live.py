"""The process-wide settings: built on first use, rebuilt by ``reload_settings()``,
and, with ``LLM_CONFIG_RELOAD_S``, whenever the content of ``LLM_CONFIG_FILE`` changes.

A swap is one assignment. A call reads the settings once, when it starts, and
keeps them to its end, so calls under way finish with the settings they began
with while new calls get the new ones: no lock on the call path, no call
between two configurations. A file that does not load changes nothing; it is
reported once (a warning naming the file, key and problem), not at every check.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path

from ._errors import ConfigError
from ._guard import guarded
from ._semconv import RELOAD_OUTCOMES, instruments
from ._settings import LLMSettings

__all__ = ["get_settings", "reload_settings"]

_logger = logging.getLogger("otel_llm")

_lock = threading.Lock()
"""Serialises loads (a reload on demand and the watcher's)."""
_current: LLMSettings | None = None
_loaded_digest: bytes | None = None
"""Digest of the file content the last load read (or failed on), so a check loads only new content."""
_watcher: threading.Thread | None = None
_stop = threading.Event()


def get_settings() -> LLMSettings:
    """The process-wide settings, built on first use."""
    current = _current
    if current is None:
        with _lock:
            current = _current
            if current is None:
                current = _load()
    return current


def reload_settings() -> LLMSettings:
    """Re-read the environment and ``LLM_CONFIG_FILE``; returns the new settings.

    If the new configuration is invalid, ``ConfigError`` is raised and the
    previous settings stay in force. Either way the try is counted in
    ``otel_llm.config.reloads``.
    """
    with _lock:
        return _load()


def _load() -> LLMSettings:
    """Build the settings and put them in force (the caller holds ``_lock``)."""
    global _current, _loaded_digest
    first = _current is None
    digest = _digest(os.environ.get("LLM_CONFIG_FILE"))  # before reading, so a later change is seen
    _loaded_digest = digest
    try:
        settings = LLMSettings()
    except ConfigError:
        if not first:
            guarded(instruments.config_reloads.add, 1, RELOAD_OUTCOMES["rejected"])
        raise
    _current = settings
    if not first:
        guarded(instruments.config_reloads.add, 1, RELOAD_OUTCOMES["ok"])
    _watch(settings)
    return settings


def _watch(settings: LLMSettings) -> None:
    global _watcher
    if settings.config_reload_s and (_watcher is None or not _watcher.is_alive()):
        _stop.clear()
        _watcher = threading.Thread(target=_check_forever, name="otel-llm-config-watch", daemon=True)
        _watcher.start()


def _check_forever() -> None:
    """Check the file every ``LLM_CONFIG_RELOAD_S`` (as currently set) until that is 0."""
    while True:
        current = _current
        if current is None or not current.config_reload_s or _stop.wait(current.config_reload_s):
            return
        _check()


def _check() -> None:
    path = os.environ.get("LLM_CONFIG_FILE")
    with _lock:
        if _digest(path) == _loaded_digest:
            return
        try:
            _load()
        except ConfigError as exc:
            _logger.warning(
                "otel-llm: LLM_CONFIG_FILE %r changed but was not loaded; the previous settings stay: %s", path, exc
            )
        except Exception:  # a bug of ours must not end the watch
            _logger.exception("otel-llm: reloading the configuration failed; the previous one stays")


def _digest(path: str | None) -> bytes | None:
    """What the file holds (``None``: no file, or unreadable), compared by content and not by mtime:
    a file rewritten within the clock's resolution, or a ConfigMap's swapped symlink, is still seen."""
    if not path:
        return None
    try:
        return hashlib.blake2b(Path(path).read_bytes(), digest_size=16).digest()
    except OSError:
        return None


def _forget() -> None:
    """Stop watching and drop the settings (tests start each from none)."""
    global _current, _loaded_digest, _watcher
    _stop.set()
    if _watcher is not None:
        _watcher.join()
    with _lock:
        _current, _loaded_digest, _watcher = None, None, None


def _after_fork_in_child() -> None:
    """A forked worker (gunicorn's ``--preload``) has no watcher thread: start its own."""
    global _lock, _stop, _watcher
    _lock, _stop, _watcher = threading.Lock(), threading.Event(), None
    if _current is not None:
        _watch(_current)


os.register_at_fork(after_in_child=_after_fork_in_child)
