"""One pane per tab."""
