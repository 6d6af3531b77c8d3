"""Secrets in the config file: the getter for the three forms (`{ env = "NAME" }`,
`{ file = "PATH" }`, a literal string), which never echoes a value, and `check_config`'s
checks of each secret that parsed (variable set, file private and readable, URL shape).
"""

from __future__ import annotations

import os
import re
import shlex
import stat
from pathlib import Path
from urllib.parse import urlsplit

from opsconsole.config.errors import MISSING_FOUND, describe_table, kind_of, suggest
from opsconsole.config.fields import Missing, Reader, Section, is_loopback, relative_to_config
from opsconsole.settings import Secret, SecretError

_SECRET_FORMS = '{ env = "NAME" }, { file = "PATH" } or a literal string'
_ENV_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def read_secret(s: Section, key: str, *, required: bool) -> Secret | None:
    """`{ env = "NAME" }`, `{ file = "PATH" }` or a literal string. Never echoes the value."""
    value = s.get(key)
    k = s.key(key)
    if isinstance(value, Missing):
        if required:
            s.fail(k, f"a secret: {_SECRET_FORMS}", MISSING_FOUND)
        return None
    result = _parse_secret(s, k, value, required=required)
    if result is not None:
        s.r.secrets.append((k, result))
    return result


def _parse_secret(s: Section, k: str, value: object, *, required: bool) -> Secret | None:
    if isinstance(value, str):
        if not value.strip():
            s.fail(
                k,
                f"a secret: {_SECRET_FORMS}",
                "an empty string",
                hint="" if required else "remove the key if there is no such credential",
            )
            return None
        return Secret.literal(value)
    if not isinstance(value, dict):
        # Only the type: a number here may well be the credential its.
        s.fail(k, f"a secret: {_SECRET_FORMS}", kind_of(value))
        return None
    if len(value) != 1 or not (set(value) <= {"env", "file"}):
        unknown = [name for name in value if name not in ("env", "file")]
        hint = suggest(unknown[0], ("env", "file")) if len(unknown) == 1 else ""
        if len(value) > 1 and not unknown:
            hint = "use either env or file, not both"
        s.fail(
            k,
            'a secret table with exactly one key, env or file: { env = "NAME" }',
            describe_table(value),
            hint=hint,
        )
        return None
    ((form, ref),) = value.items()
    if not isinstance(ref, str) or not ref.strip():
        what = "an environment variable name" if form == "env" else "a file path"
        found = f"{form} = {kind_of(ref)}" if not isinstance(ref, str) else f'{form} = ""'
        s.fail(k, f"{form} = {what} (a non-empty string)", found)
        return None
    if form == "env":
        if not _ENV_VAR_NAME.match(ref):
            # Not echoed: a pasted credential here is a common mistake.
            s.fail(
                k,
                "env = the NAME of an environment variable (letters, digits, _)",
                "a string that is not a variable name (not shown)",
                hint='write the variable\'s name, e.g. { env = "VERCEL_TOKEN" }, not its value',
            )
            return None
        return Secret.env(ref)
    return Secret.file(str(relative_to_config(s.r.path, ref)))


def check_secret(r: Reader, key: str, secret: Secret, config_mode: int | None) -> None:
    if secret.kind == "env":
        value = os.environ.get(secret.ref)
        if value is None or not value.strip():
            state = "it unset" if value is None else "it set but empty"
            r.add(
                key,
                f"the environment variable {secret.ref} to be set",
                state,
                hint=f"export {secret.ref} in the environment that runs opsconsole",
            )
            return
    elif secret.kind == "file":
        p = Path(secret.ref)
        expected = f"a readable secret file {p}"
        try:
            st = p.stat()
        except FileNotFoundError:
            r.add(key, expected, "no such file")
            return
        except OSError as exc:
            r.add(key, expected, f"it cannot be accessed ({exc.strerror})")
            return
        if not stat.S_ISREG(st.st_mode):
            r.add(key, expected, "something that is not a regular file")
            return
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            r.add(
                key,
                f"secret file {p} readable only by its owner (mode 0600)",
                f"mode {stat.S_IMODE(st.st_mode):04o}",
                hint=f"chmod 600 {shlex.quote(str(p))}",
            )
            return
        if not os.access(p, os.R_OK):
            r.add(key, expected, "a file this user cannot read", hint="check the file's owner")
            return
    elif secret.kind == "literal" and config_mode is not None and config_mode & (stat.S_IRWXG | stat.S_IRWXO):
        r.add(
            key,
            "",
            f"literal secret in a config file readable by others (mode {config_mode:04o}); "
            f'chmod 600 {shlex.quote(r.file)} or use {{ env = "NAME" }}',
            severity="warning",
        )
    _check_secret_value(r, key, secret)


def _check_secret_value(r: Reader, key: str, secret: Secret) -> None:
    """Shape checks on a resolved value; messages describe the shape, never the value."""
    try:
        value = secret.reveal()
    except SecretError:
        return  # reported above in source-specific terms
    if not value.strip():
        r.add(key, "a non-empty secret", f"an empty value from {secret.source}")
        return
    if not key.endswith(("database_url", "pooler_url")) or "://" not in value:
        return  # libpq also accepts "host=... dbname=..." strings
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        r.add(key, "a postgresql:// connection URL", f"a malformed URL from {secret.source} (not shown)")
        return
    if parts.scheme not in ("postgres", "postgresql"):
        r.add(key, "a postgresql:// connection URL", f'a "{parts.scheme}://" URL from {secret.source}')
    elif key.endswith("pooler_url") and port not in (None, 6543) and not is_loopback(parts.hostname or ""):
        r.add(
            key,
            "the transaction-mode pooler on port 6543",
            f"port {port}",
            hint="use the pooler's transaction-mode connection string",
            severity="warning",
        )
