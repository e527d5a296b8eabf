"""The server's settings (`app.*` of configs/app.yaml): where it listens and who may use it.

The app listens on the loopback address by default. Binding to any other address exposes it to
the network, so it is refused unless `app.auth` names the users allowed in: `user:password`, or a
file holding one `user:password` per line (blank lines and `#` comments skipped). Public share
links are never created (`share=False` is fixed in `editing_app.web.server`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from editing.errors import UserInputError

__all__ = ["AppSettings", "check_session_root", "is_loopback", "parse_auth"]

MEGABYTE = 1024 * 1024

SESSION_KEY_LENGTH = 16
"""Hex digits of a session folder's name (`editing_app.web.session.session_key`)."""

UPLOAD_CACHE_CLEANUP = (3600, 86400)
"""(every, older than), in seconds: Gradio's upload folder (`.uploads/` of the session root) is
swept every hour of the files it stored more than a day ago (`gr.Blocks(delete_cache=...)`; it is
emptied when the server stops). The app copies each upload into the session folder at once, so
only a page left open for a day needs its photo uploaded again."""


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, `localhost`)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_auth(value: str | None) -> list[tuple[str, str]]:
    """The (user, password) pairs of `app.auth`: `user:password`, or a file of such lines.

    Raises:
        UserInputError: a pair without a user or a password, an empty or unreadable file.
    """
    if value is None or str(value) == "":
        return []
    text = str(value)
    path = Path(text)
    if ":" not in text or path.is_file():
        if not path.is_file():
            raise UserInputError(
                f"app.auth={text!r} is neither user:password nor a file: give app.auth=user:password "
                "or the path of a file with one user:password per line"
            )
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise UserInputError(f"cannot read app.auth file {path}: {err}") from None
        stripped = (line.strip() for line in lines)
        pairs = [line for line in stripped if line and not line.startswith("#")]
        where = f"app.auth file {path}"
    else:
        pairs, where = [text], "app.auth"
    users = []
    for pair in pairs:
        user, _, password = pair.partition(":")
        if not user or not password:
            raise UserInputError(f"{where}: every entry must be user:password with both parts")
        users.append((user, password))
    if not users:
        raise UserInputError(f"{where} names no user: add a line user:password")
    return users


def check_session_root(root: Path) -> None:
    """Refuse a session root that holds anything but the app's own files.

    The server serves the files under the root (Gradio's `allowed_paths`), so a folder with other
    contents (a home or project folder) would expose them; the app's own entries are its upload
    folder `.uploads` and the session folders (`SESSION_KEY_LENGTH` hex digits).

    Raises:
        UserInputError: the root is a file, or holds another entry (named in the message).
    """
    if not root.exists():
        return
    if not root.is_dir():
        raise UserInputError(f"app.session_dir={root} is a file: give a new or empty folder")
    for entry in sorted(root.iterdir()):
        name = entry.name
        ours = name == ".uploads" or (
            len(name) == SESSION_KEY_LENGTH
            and all(c in "0123456789abcdef" for c in name)
            and entry.is_dir()
        )
        if not ours:
            raise UserInputError(
                f"app.session_dir={root} holds {name!r}, which the app did not write: the server "
                "serves every file under that folder, so give a new or empty folder"
            )


@dataclass(frozen=True)
class AppSettings:
    """`app.*`, checked: the address, the users, the session root and the upload limit."""

    host: str = "127.0.0.1"
    port: int = 7860
    auth: tuple[tuple[str, str], ...] = ()
    session_dir: Path = Path("app_sessions")
    max_upload_mb: float = 20.0
    max_sessions: int = 8

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * MEGABYTE)

    @classmethod
    def from_config(cls, app: Any) -> AppSettings:
        """From the composed `app` node (already range-checked by `validate_config`).

        Raises:
            UserInputError: a non-loopback host without `app.auth`, or a malformed `app.auth`.
        """
        host = str(app.host)
        users = tuple(parse_auth(app.get("auth")))
        if not is_loopback(host) and not users:
            raise UserInputError(
                f"app.host={host} makes the app reachable from other machines: give "
                "app.auth=user:password (or a file of user:password lines), or keep "
                "app.host=127.0.0.1"
            )
        session_dir = Path(str(app.session_dir)).resolve()
        check_session_root(session_dir)
        return cls(
            host=host,
            port=int(app.port),
            auth=users,
            session_dir=session_dir,
            max_upload_mb=float(app.max_upload_mb),
            max_sessions=int(app.max_sessions),
        )

    def describe(self) -> str:
        """The line printed at start: where it listens and whether it asks for a password."""
        shown = f"[{self.host}]" if ":" in self.host else self.host
        where = f"http://{shown}:{self.port}"
        access = (
            "loopback only (this machine)"
            if is_loopback(self.host)
            else "reachable from the network"
        )
        if self.auth:
            access += f"; password required ({len(self.auth)} user(s) from app.auth)"
        return f"serving on {where}: {access}; session files under {self.session_dir}"
