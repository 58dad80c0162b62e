"""Big screen: the board for a wall in kiosk mode (token from secrets.toml; no Streamlit chrome)."""

from kpi_core.ui.wall import main

main()
