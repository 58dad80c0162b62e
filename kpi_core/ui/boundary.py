"""The one error boundary of every page and of the sections that read a user's files, databases
or settings: whatever goes wrong inside it, the page shows a message, never a traceback.

- the warehouse busy (another process holds it): a warning, try again;
- a refusal of the core (`KpiError`): its text in the page's language;
- anything else (a bug, a library's fault on odd input): logged with its traceback and shown as
  `unexpected` (an i18n key with `{error}`) — the values of the secret vaults cleaned out of
  both, and session ids out of the log (the log's record factory, kpi_core/ui/server.py, sees
  the traceback because it is passed as an argument, not as exc_info).

st.stop() and st.rerun() raise BaseExceptions that are not Exceptions: they pass through.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import streamlit as st

from kpi_core import i18n
from kpi_core.errors import KpiError, WarehouseBusyError
from kpi_core.references import held, redact
from kpi_core.texts import N_
from kpi_core.ui.widgets import refusal_text

if TYPE_CHECKING:
    from kpi_core.ui import PageContext

log = logging.getLogger(__name__)


@contextmanager
def guard(ctx: PageContext | str, unexpected: str = N_("page_unexpected")) -> Iterator[None]:
    """Run a page or one of its sections; see the module's docstring. `ctx` is the page's
    context, or only its language where there is none (the big screen)."""
    lang = ctx if isinstance(ctx, str) else ctx.lang
    try:
        yield
    except WarehouseBusyError:
        st.warning(i18n.t("warehouse_busy", lang))
    except KpiError as exc:
        st.error(refusal_text(lang, exc))
    except Exception as exc:
        secrets = held()
        log.error("a fault on a page\n%s", redact(traceback.format_exc(), secrets))
        said = redact(f"{type(exc).__name__}: {exc}", secrets)
        st.error(i18n.t(unexpected, lang, error=said))
