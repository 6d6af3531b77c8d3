"""The built-in theme files (TOML).

A regular package (not a namespace) so that `importlib.resources.files("opsconsole.themes")` finds the files
in every kind of install: pyproject.toml maps this top-level folder to `opsconsole.themes`, and setuptools'
editable finder only resolves such a mapped sub-package when it has an `__init__.py`.
"""
