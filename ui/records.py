"""Drawing one record in its own shape: a conversation as chat turns, a preference pair side by side, Alpaca parts.

Texts are drawn as plain text (``st.text``), never as Markdown or HTML, except fenced code blocks, which
are drawn with ``st.code``. What is read out of the record comes from :func:`core.records.derive`, the
one place that reads shapes.
"""

from __future__ import annotations

import json
import re
from typing import Any

import streamlit as st

from core.records import RecordError, derive

#: A turn longer than this (characters) is drawn folded, in an expander.
LONG_TURN = 1200
_FENCE = re.compile(r"```([\w+#.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_AVATARS = {"system": ":material/settings:", "tool": ":material/build:"}
_TOOL_NAMES = {"label_studio": "Label Studio task", "argilla": "Argilla record"}


def text_parts(text: str) -> list[tuple[str, str, str | None]]:
    """Split a text into ``("text", part, None)`` and ``("code", code, language)`` parts at fenced code
    blocks (```lang ... ```; an unclosed fence runs to the end)."""
    parts: list[tuple[str, str, str | None]] = []
    at = 0
    for m in _FENCE.finditer(text):
        before = text[at:m.start()]
        if before.strip():
            parts.append(("text", before.strip("\n"), None))
        parts.append(("code", m.group(2).rstrip("\n"), m.group(1) or None))
        at = m.end()
    rest = text[at:]
    if rest.strip() or not parts:
        parts.append(("text", rest.strip("\n"), None))
    return parts


def _draw_text(text: str) -> None:
    for kind, part, language in text_parts(text):
        if kind == "code":
            st.code(part, language=language)
        else:
            st.text(part, width="stretch")


def _draw_turn_body(text: str) -> None:
    if len(text) > LONG_TURN:
        head = " ".join(text[:80].split())
        with st.expander(f"{head}… ({len(text):,} characters)"):
            _draw_text(text)
    else:
        _draw_text(text)


def _draw_turns(turns: list[dict[str, str]]) -> None:
    for turn in turns:
        role = turn["role"]
        with st.chat_message(role, avatar=_AVATARS.get(role)):
            if role in _AVATARS:
                st.caption(role)
            _draw_turn_body(turn["content"])


def _draw_section(title: str, text: str | None) -> None:
    if text:
        st.markdown(f"**{title}**")
        _draw_turn_body(text)


def render_record(record: dict[str, Any] | str, shape: str) -> None:
    """Draw a sample's record (a dict, or its JSON text) as the shape it came in.

    A conversation (``chat``, ``sharegpt``) is chat turns with their roles, long turns folded and code
    blocks as code; a ``preference`` pair is its prompt with the chosen and rejected answers side by side;
    an ``instruction`` record is instruction / input / output (earlier turns and the system prompt
    folded); ``text`` is the text. A Label Studio task or Argilla record is drawn by the shape of its
    data. A record that cannot be read is shown as JSON with the reason.
    """
    if isinstance(record, str):
        record = json.loads(record)
    try:
        d = derive(record, shape)
    except (RecordError, ValueError) as exc:
        st.warning(f"This record cannot be read as {shape}: {exc}")
        st.json(record, expanded=False)
        return
    if shape in _TOOL_NAMES:
        st.caption(f"{_TOOL_NAMES[shape]} · {d.shape}")
    if d.shape in ("chat", "sharegpt"):
        st.caption(f"{d.n_turns} turns")
        _draw_turns(d.turns)
    elif d.shape == "preference":
        if d.context:
            with st.expander("Context (system prompt, earlier turns)"):
                st.text(d.context, width="stretch")
        if d.prompt:
            with st.chat_message("user"):
                _draw_turn_body(d.prompt)
        chosen, rejected = st.columns(2)
        with chosen:
            st.markdown(":green[**Chosen**]")
            with st.chat_message("assistant"):
                _draw_turn_body(d.response or "")
        with rejected:
            st.markdown(":red[**Rejected**]")
            with st.chat_message("assistant"):
                _draw_turn_body(d.rejected or "")
    elif d.shape == "instruction":
        fields = d.text_fields()
        earlier = [t for t in d.turns[:-2 if d.response is not None else -1]]
        if earlier:
            with st.expander(f"System prompt and earlier turns ({len(earlier)})"):
                _draw_turns(earlier)
        _draw_section("Instruction", fields["instruction"])
        _draw_section("Input", fields["input"])
        _draw_section("Output", fields["output"])
    else:
        _draw_text(d.conversation)
