"""One module per external system. Async; expected failures come back as data."""
