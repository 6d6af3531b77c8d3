"""Plain data and ports. Never imports Textual, Rich or the UI."""
