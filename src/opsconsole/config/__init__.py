"""Reading, validating and writing the TOML configuration.

Every problem in a file is collected and reported at once (an operator fixing a config at
3 a.m. should not discover its errors one run at a time), each naming the file, the key,
what was expected and what was found. A secret's value is never part of any message.

`load_settings` fails only on what makes the file unusable; `check_config` additionally
looks at the machine it runs on (secrets resolvable, file permissions, audit directory).

The package, one module per concern:

    errors.py    Problem, ConfigError / ConfigNotFound / ConfigExists, how values are described
    fields.py    the validator: Reader (one file's problems), Section (typed, validating getters)
    secrets.py   the secret getter (env / file / literal) and the checks of resolved secrets
    schema.py    SECTIONS and one builder per section -> Settings
    reading.py   read_settings / load_settings (TOML errors with line and column)
    check.py     check_config / format_problems (`opsconsole config check`)
    template.py  the commented template, TOML dumping, atomic mode-0600 writes
"""

from opsconsole.config.check import check_config, format_problems
from opsconsole.config.errors import ConfigError, ConfigExists, ConfigNotFound, Problem, Severity
from opsconsole.config.reading import load_settings, read_settings
from opsconsole.config.schema import SECTIONS
from opsconsole.config.template import dump_settings_toml, template_text, write_config, write_template

__all__ = [
    "SECTIONS",
    "ConfigError",
    "ConfigExists",
    "ConfigNotFound",
    "Problem",
    "Severity",
    "check_config",
    "dump_settings_toml",
    "format_problems",
    "load_settings",
    "read_settings",
    "template_text",
    "write_config",
    "write_template",
]
