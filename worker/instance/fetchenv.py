"""Fetch the worker's environment from SSM Parameter Store and Secrets Manager into a file.

Run by the worker unit's ExecStartPre (`image/bin/fetch-env`) at every start, so a rotated
broker password or a changed setting reaches the worker on its next restart, and no secret is
ever written into user data or the image.

- `WORKER_SSM_PATH` (e.g. `/celery-cluster/prod/default/`): every parameter under it becomes a
  variable named after the parameter's last path segment (`.../CELERY_TASK_ROUTES`).
- `WORKER_SECRET_ID`: a secret whose SecretString is a JSON object of variables
  (`{"CELERY_BROKER_URL": "rediss://..."}`); it wins over a parameter of the same name.

The file is written for systemd's EnvironmentFile= (one `NAME="value"` per line), mode 0600.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from celery_cluster_client.secret import json_object

NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


class FetchError(RuntimeError):
    """The environment could not be fetched; the message names the parameter, secret or variable."""


class FetchSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WORKER_", frozen=True, extra="ignore")

    ssm_path: str | None = Field(default=None, pattern=r"^/[A-Za-z0-9_.\-/]*$")
    secret_id: str | None = Field(default=None, min_length=1)


def load_settings() -> FetchSettings:
    try:
        return FetchSettings()
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        raise FetchError(f"WORKER_{str(error['loc'][0]).upper()}: {error['msg']}") from None


def from_parameters(ssm: Any, path: str) -> dict[str, str]:
    found: dict[str, str] = {}
    pages = ssm.get_paginator("get_parameters_by_path").paginate(Path=path, Recursive=True, WithDecryption=True)
    for page in pages:
        for parameter in page["Parameters"]:
            name = parameter["Name"].rstrip("/").rsplit("/", 1)[-1]
            if not NAME.match(name):
                raise FetchError(f"SSM parameter {parameter['Name']}: {name!r} is not a valid variable name")
            found[name] = parameter["Value"]
    return found


def from_secret(secrets: Any, secret_id: str) -> dict[str, str]:
    data = json_object(secrets.get_secret_value(SecretId=secret_id).get("SecretString"))
    if data is None:
        raise FetchError(f"secret {secret_id}: SecretString must be a JSON object of variables")
    found: dict[str, str] = {}
    for name, item in data.items():
        if not NAME.match(name):
            raise FetchError(f"secret {secret_id}: {name!r} is not a valid variable name")
        found[name] = item if isinstance(item, str) else json.dumps(item)
    return found


BARE = re.compile(r"^[A-Za-z0-9_./:,@+=%-]*$")


def quote(name: str, value: str) -> str:
    """One EnvironmentFile line: bare when plain, else double-quoted (systemd unescapes \\\\ \\" \\$ \\`)."""
    if "\n" in value or "\r" in value or "\0" in value:
        raise FetchError(f"{name}: value contains a line break or NUL, which an EnvironmentFile cannot hold")
    if BARE.match(value):
        return f"{name}={value}"
    escaped = re.sub(r'([\\"$`])', r"\\\1", value)
    return f'{name}="{escaped}"'


def render(variables: dict[str, str]) -> str:
    return "".join(quote(name, variables[name]) + "\n" for name in sorted(variables))


def fetch(settings: FetchSettings, ssm: Any = None, secrets: Any = None) -> dict[str, str]:
    variables: dict[str, str] = {}
    try:
        if settings.ssm_path:
            variables.update(from_parameters(ssm or boto3.client("ssm"), settings.ssm_path))
        if settings.secret_id:
            variables.update(from_secret(secrets or boto3.client("secretsmanager"), settings.secret_id))
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise FetchError(f"{exc.operation_name}: {error.get('Code')}: {error.get('Message')}") from None
    except BotoCoreError as exc:
        raise FetchError(str(exc)) from None
    return variables


def write(path: Path, text: str, owner: str | None) -> None:
    """Atomically, mode 0600, owned by `owner`: a half-written file never reaches the worker."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(temporary, 0o600)
        if owner is not None and os.geteuid() == 0:
            entry = pwd.getpwnam(owner)
            os.chown(temporary, entry.pw_uid, entry.pw_gid)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fetch-env", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("output", type=Path, help="EnvironmentFile to write")
    parser.add_argument("--owner", default=None, help="user that must own the file (when run as root)")
    args = parser.parse_args(argv)
    try:
        variables = fetch(load_settings())
        write(args.output, render(variables), args.owner)
    except (FetchError, KeyError) as exc:
        print(f"fetch-env: {exc}", file=sys.stderr)
        return 1
    print(f"fetch-env: wrote {len(variables)} variables to {args.output}: {', '.join(sorted(variables))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
