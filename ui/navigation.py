"""The page table: every page of the app, its section, and the roles that see it."""

from __future__ import annotations

from dataclasses import dataclass

from core import roles

_EVERYONE = frozenset({roles.LEAD, roles.REVIEWER, roles.STAKEHOLDER, roles.SYSTEM})
_WORKERS = frozenset({roles.LEAD, roles.REVIEWER, roles.SYSTEM})
_LEADS = frozenset({roles.LEAD, roles.SYSTEM})


@dataclass(frozen=True)
class PageSpec:
    path: str
    title: str
    icon: str
    section: str
    roles: frozenset[str]
    #: Whether the page has controls that change data (stakeholders see only pages without).
    writes: bool = False


#: Every page, in menu order (a new page adds its line here; tests walk this table).
PAGES: tuple[PageSpec, ...] = (
    PageSpec("pages/overview.py", "Overview", ":material/dashboard:", "Quality", _EVERYONE),
    PageSpec("pages/agreement.py", "Agreement", ":material/groups:", "Quality", _EVERYONE, writes=True),
    PageSpec("pages/drift.py", "Drift", ":material/ssid_chart:", "Quality", _EVERYONE),
    PageSpec("pages/data_quality.py", "Data quality", ":material/rule:", "Quality", _EVERYONE, writes=True),
    PageSpec("pages/iterations.py", "Iterations", ":material/trending_up:", "Quality", _EVERYONE, writes=True),
    PageSpec("pages/annotators.py", "Annotators", ":material/badge:", "Quality", _EVERYONE, writes=True),
    PageSpec("pages/review.py", "Review", ":material/edit_note:", "Labeling", _WORKERS, writes=True),
    PageSpec("pages/selection.py", "Active learning", ":material/target:", "Labeling", _WORKERS, writes=True),
    PageSpec("pages/audit.py", "Audit", ":material/history:", "Labeling", _EVERYONE),
    PageSpec("pages/import_data.py", "Import", ":material/upload:", "Data", _LEADS, writes=True),
)
DEFAULT_PAGE = "pages/overview.py"


def pages_for(role: str) -> list[PageSpec]:
    """The pages ``role`` may open (``st.navigation`` only reaches listed pages)."""
    return [p for p in PAGES if role in p.roles]
