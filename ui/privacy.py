"""The lead-only "Show personal data" switch: masked by default; turning it on is an audited reveal
(:func:`core.privacy.reveal`) kept for this session, page and dataset until it is turned off."""

from __future__ import annotations

from typing import Any

import streamlit as st

from core import privacy
from core.roles import Action
from ui.errors import show_error
from ui.session import can, current_user, get_store

_STATE = "pii_reveals"
HELP = ("Personal data (e-mails, phone, ID and card numbers, IP addresses) is masked as *** + its last 4 "
        "characters for everyone. Team leads may show it raw; each time it is turned on is recorded in the "
        "audit log.")


def reveal_toggle(dataset: str, where: str, key: str, container: Any = None) -> privacy.Reveal | None:
    """Draw the switch for a team lead (nothing for anyone else) and return the session's reveal of
    ``dataset`` on this page, or None (show masked). The reveal is audited once, when it is turned on."""
    decisions: dict = st.session_state.setdefault(_STATE, {})
    slot = (key, dataset)
    if not can(Action.RAW_PII):
        decisions.pop(slot, None)
        return None
    on = (container or st).toggle("Show personal data", key=f"{key}_{dataset}", value=False, help=HELP)
    if not on:
        decisions.pop(slot, None)
        return None
    decision = decisions.get(slot)
    if privacy.is_revealed(decision, dataset) and decision.actor == current_user():
        return decision
    try:
        decision = privacy.reveal(get_store(), current_user(), dataset, where)
    except Exception as exc:  # noqa: BLE001 - refused or a busy store: stay masked, say why
        show_error(exc)
        decisions.pop(slot, None)
        return None
    decisions[slot] = decision
    return decision
