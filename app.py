"""KPI Monitor's entry point: the Overview page, and the app's own server around every page.

`streamlit run app.py` finds the `st.App` below and serves it (uvicorn imports this file as the
module `app`): Streamlit's pages plus the sign-in routes (kpi_core/ui/server.py). Each script run
of the Overview executes this file as `__main__`, which draws the page (kpi_core/ui/overview.py).
`uvicorn app:app` serves the same.
"""

import streamlit as st

if __name__ == "__main__":
    from kpi_core.ui.overview import main

    main()
else:
    from kpi_core.ui import server

    server.hide_session_ids()
    app = st.App(__file__, routes=server.routes(), middleware=server.middleware())
