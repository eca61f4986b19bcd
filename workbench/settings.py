"""Where the workbench keeps its files and which safety switches are on.

Settings come from environment variables (``WORKBENCH_*``) and CLI flags; nothing is read
from the network. The home folder holds the SQLite store (unless ``WORKBENCH_DATABASE_URL``
puts the store in PostgreSQL), the converted demo model, the activation cache and training runs.
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from workbench.db import URL_SETTING, check_url, mask_url
from workbench.errors import ConfigError, DataError, SecurityError


def default_home() -> Path:
    """``WORKBENCH_HOME`` if set, else the per-user data directory."""
    env = os.environ.get("WORKBENCH_HOME")
    return Path(env).expanduser() if env else Path(platformdirs.user_data_dir("preference-workbench"))


def _split_paths(value: str | None) -> list[Path]:
    return [Path(p).expanduser() for p in (value or "").split(os.pathsep) if p.strip()]


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and 'localhost'."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Settings:
    """All knobs in one place; every component reads them from the app context."""

    home: Path = field(default_factory=default_home)
    model_roots: list[Path] = field(default_factory=lambda: _split_paths(os.environ.get("WORKBENCH_MODEL_ROOTS")))
    data_roots: list[Path] = field(default_factory=lambda: _split_paths(os.environ.get("WORKBENCH_DATA_ROOTS")))
    host: str = "127.0.0.1"
    port: int = 7860
    auth: tuple[str, str] | None = None
    # Named annotators (name -> password) who log in under their own name; see load_users.
    users: dict[str, str] = field(default_factory=dict)
    allow_pickle: bool = False
    trust_remote_code: bool = False
    device: str = "auto"
    dtype: str = "auto"
    # Bounds on what one HTTP request may carry (checked before the body is parsed).
    max_body_bytes: int = 1_000_000
    # A file uploaded through the browser (only the owner may upload): checked from Content-Length
    # before a byte is written, and by Gradio while a chunked upload streams.
    max_upload_bytes: int = 2_000_000_000
    max_json_depth: int = 32
    # Wrong passwords for one login (from anywhere), or wrong annotator tokens from one address,
    # before that login (that address) is locked out; the lockout then doubles with each further
    # failure, up to login_lockout_max_s. One address is locked for everyone on it only after
    # login_failures_per_address wrong passwords (guessing across many logins).
    login_failures_allowed: int = 10
    login_failures_per_address: int = 50
    login_lockout_max_s: float = 300.0
    # The store in PostgreSQL (team servers): WORKBENCH_DATABASE_URL, the first line of the file
    # WORKBENCH_DATABASE_URL_FILE, or --database-url; None keeps the SQLite file in the home.
    # Kept out of repr, run manifests and logs: it may carry a password (shown only masked).
    database_url: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.home = Path(self.home).expanduser()
        if self.database_url is None:
            self.database_url = database_url_from_env()
        if self.database_url is not None:
            check_url(self.database_url)
        auth = os.environ.get("WORKBENCH_AUTH")
        if self.auth is None and auth:
            self.auth = parse_auth(auth)
        users_file = os.environ.get("WORKBENCH_USERS")
        if not self.users and users_file:
            self.users = load_users(Path(users_file).expanduser())
        if self.auth and self.auth[0] in self.users:
            raise ConfigError(f"'{self.auth[0]}' is both the owner login (--auth) and an annotator in the users file.",
                              hint="Give the owner and each annotator a different name.")

    @property
    def logins(self) -> dict[str, str]:
        """Every accepted login (the owner from ``auth`` and the annotators), name -> password."""
        return {**self.users, **({self.auth[0]: self.auth[1]} if self.auth else {})}

    # Folders under home; created on first use so a read-only listing creates nothing.
    @property
    def db_path(self) -> Path:
        return self.home / "workbench.sqlite"

    @property
    def store_target(self) -> str | Path:
        """What ``Store`` opens: the PostgreSQL URL when one is set, else the SQLite file."""
        return self.database_url or self.db_path

    @property
    def store_location(self) -> str:
        """Where the store is, fit to print (a URL's password masked)."""
        return mask_url(self.database_url) if self.database_url else str(self.db_path)

    def has_store(self) -> bool:
        """Whether a store exists already (a PostgreSQL database is created by its administrator)."""
        return self.database_url is not None or self.db_path.exists()

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache" / "activations"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    def ensure_dirs(self) -> None:
        for d in (self.home, self.models_dir, self.cache_dir, self.runs_dir):
            d.mkdir(parents=True, exist_ok=True)

    def all_model_roots(self) -> list[Path]:
        """The workbench's own models folder first, then the user's roots and the HF cache."""
        roots = [self.models_dir, *self.model_roots]
        hf_cache = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
        if hf_cache:
            roots.append(Path(hf_cache))
        return roots

    def all_data_roots(self) -> list[Path]:
        return [self.home / "data", *self.data_roots]

    def check_bind(self) -> None:
        """Refuse a non-loopback bind without auth: the labeling UI would be open to anyone."""
        if not is_loopback(self.host) and not self.logins:
            raise SecurityError(
                f"Refusing to listen on {self.host}: that address is reachable from other machines "
                "and no login is configured.",
                hint="Set WORKBENCH_AUTH=user:password (or pass --auth user:password), give annotators "
                "their own logins with WORKBENCH_USERS=<users file>, or bind to 127.0.0.1.",
            )


def database_url_from_env() -> str | None:
    """``WORKBENCH_DATABASE_URL``, else the first line of the file ``WORKBENCH_DATABASE_URL_FILE``
    names (a secret mounted as a file keeps the password out of the process environment)."""
    url = os.environ.get(URL_SETTING, "").strip()
    if url:
        return url
    path = os.environ.get(f"{URL_SETTING}_FILE", "").strip()
    if not path:
        return None
    from workbench.data.readers import read_user_text  # the one safe way to read a user's file

    try:
        lines = read_user_text(Path(path).expanduser()).strip().splitlines()
    except DataError as exc:
        raise ConfigError(f"Cannot read {URL_SETTING}_FILE: {exc.message}",
                          hint="Point it at a file whose first line is postgresql://USER:PASSWORD@HOST/DATABASE.") from None
    if not lines:
        raise ConfigError(f"{URL_SETTING}_FILE ({path}) is empty.", hint="Write the postgresql:// URL on its first line.")
    return lines[0].strip()


def parse_auth(value: str) -> tuple[str, str]:
    """Parse ``user:password``."""
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise ConfigError(
            f"Auth value {value!r} is not of the form user:password.",
            hint="Use e.g. --auth alice:s3cret or WORKBENCH_AUTH=alice:s3cret.",
        )
    return user, password


def load_users(path: Path) -> dict[str, str]:
    """Read a users file: one ``name:password`` per line; blank lines and ``#`` comments ignored.

    Each name is an annotator who logs in under that name and labels only as themselves.
    """
    from workbench.data.readers import read_user_text  # the one safe way to read a user's file (a FIFO would hang serve)

    try:
        text = read_user_text(path)
    except DataError as exc:
        raise ConfigError(f"Cannot read the users file: {exc.message}",
                          hint="Point WORKBENCH_USERS (or --users) at a file of name:password lines.") from None
    users: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        user = user.strip()
        if not sep or not user or not password:
            raise ConfigError(f"{path}, line {lineno}: not of the form name:password.", hint="Write e.g. alice:s3cret, one per line.")
        if user in users:
            raise ConfigError(f"{path}, line {lineno}: '{user}' is listed twice.", hint="Give each annotator one line.")
        users[user] = password
    if not users:
        raise ConfigError(f"The users file {path} lists nobody.", hint="Write one name:password per line.")
    return users
