"""Workspaces: where one person's models, runs, kept drawings and data sets live.

Without sign-in there is one workspace, ``local``: the folders and files the environment names
(``$NN_MODELS_DIR``, ``$NN_RUNS_DB``, ``$NN_MINE_DB``, ``$NN_DATA_DIR``) or their defaults, as
before workspaces existed. With sign-in, each person has a folder of their own,
``$NN_WORKSPACES_DIR/<id>/`` (default: ``workspaces/`` beside the run database), holding
``models/``, ``runs.sqlite``, ``mine.sqlite`` and ``sets/``. The ``<id>`` is derived from the
identity provider's issuer and the person's subject (a hash), never from a name the person can
choose, so no name, upload or path reaches from one workspace into another.

The shipped models folder (``saved_models/``, with the default model and whatever a teacher hands
out) and MNIST are shared: every workspace reads them, no person writes to them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from nn.core.limits import bytes_from_env
from nn.data import registry
from nn.io import model_files, models_folder
from nn.services import mine, runs

__all__ = [
    "DEFAULT_WORKSPACE_BYTES",
    "LOCAL_ID",
    "QuotaError",
    "SHARED_MODELS_ENV",
    "WORKSPACES_DIR_ENV",
    "WORKSPACE_BYTES_ENV",
    "Workspace",
    "WorkspaceError",
    "disk_used",
    "hand_out",
    "list_workspaces",
    "shared_models_dir",
    "workspace_bytes",
    "workspace_id",
    "workspaces_dir",
]

WORKSPACES_DIR_ENV = "NN_WORKSPACES_DIR"
WORKSPACE_BYTES_ENV = "NN_WORKSPACE_BYTES"
SHARED_MODELS_ENV = "NN_SHARED_MODELS_DIR"
DEFAULT_WORKSPACE_BYTES = 2 * 1024**3
LOCAL_ID = "local"
PROFILE_FILE = "profile.json"
# "u" and 24 hex digits: 96 bits of a SHA-256, so two people never share a folder by chance.
_ID_PATTERN = re.compile(r"u[0-9a-f]{24}")
_MAX_PROFILE_BYTES = 4096
_MAX_CLAIM_CHARS = 200


class WorkspaceError(ValueError):
    """A workspace id that is not one, or one that does not exist."""


class QuotaError(ValueError):
    """A write that would take a workspace over its disk quota."""


def workspace_id(issuer: str, subject: str) -> str:
    """The folder name of the person ``subject`` at the identity provider ``issuer``."""
    if not issuer or not subject:
        raise WorkspaceError("a signed-in identity needs both an issuer and a subject")
    digest = hashlib.sha256(f"{issuer}\0{subject}".encode()).hexdigest()
    return "u" + digest[:24]


def workspaces_dir() -> Path:
    """``$NN_WORKSPACES_DIR``, else ``workspaces/`` beside the run database (read at call time)."""
    value = os.environ.get(WORKSPACES_DIR_ENV, "").strip()
    if value:
        return Path(value).expanduser().resolve()
    return runs.default_runs_path().resolve().parent / "workspaces"


def shared_models_dir() -> Path:
    """The models every workspace reads and none writes: the shipped ``saved_models/`` (or
    ``$NN_MODELS_DIR``), where the default model lives and a teacher hands models out. In a
    command run with ``--workspace`` (:meth:`Workspace.activate`), the folder it was before."""
    value = os.environ.get(SHARED_MODELS_ENV, "").strip()
    return Path(value) if value else models_folder.models_dir()


def workspace_bytes() -> int:
    """A workspace's disk quota: ``$NN_WORKSPACE_BYTES``, else 2 GiB."""
    return bytes_from_env(WORKSPACE_BYTES_ENV, DEFAULT_WORKSPACE_BYTES)


@dataclass(frozen=True)
class Workspace:
    """One person's files; ``root`` is ``None`` for the local workspace (no sign-in)."""

    id: str
    root: Path | None = None

    @classmethod
    def local(cls) -> Workspace:
        return cls(LOCAL_ID)

    @classmethod
    def of(cls, ident: str) -> Workspace:
        """The workspace named ``ident`` (``local`` or a person's id as ``workspace_id`` makes
        it); ``WorkspaceError`` for anything else, so a typed id never becomes a path."""
        text = str(ident).strip()
        if text == LOCAL_ID:
            return cls.local()
        if not _ID_PATTERN.fullmatch(text):
            raise WorkspaceError(
                f"{ident!r} is not a workspace id: use 'local' or the id the Class page or "
                "'python -m nn workspaces' shows (u followed by 24 hex digits)"
            )
        return cls(text, workspaces_dir() / text)

    @classmethod
    def for_identity(cls, issuer: str, subject: str) -> Workspace:
        return cls.of(workspace_id(issuer, subject))

    @property
    def is_local(self) -> bool:
        return self.root is None

    @property
    def models_dir(self) -> Path:
        return models_folder.models_dir() if self.root is None else self.root / "models"

    @property
    def runs_db(self) -> Path:
        return runs.default_runs_path() if self.root is None else self.root / "runs.sqlite"

    @property
    def mine_db(self) -> Path:
        return mine.default_mine_path() if self.root is None else self.root / "mine.sqlite"

    @property
    def data_dir(self) -> Path:
        return registry.data_dir() if self.root is None else self.root / "sets"

    def exists(self) -> bool:
        return self.root is None or self.root.is_dir()

    def activate(self) -> None:
        """Point this process's folders (``NN_MODELS_DIR``, ``NN_RUNS_DB``, ``NN_MINE_DB``,
        ``NN_DATA_DIR``) at this workspace, the shared models staying readable: what the
        command line's ``--workspace ID`` does. ``WorkspaceError`` if nobody with that id has
        signed in (the folder does not exist)."""
        if self.root is None:
            return
        if not self.exists():
            raise WorkspaceError(
                f"no workspace {self.id} on this server: nobody with that id has signed in "
                "('python -m nn workspaces' lists them)"
            )
        os.environ[SHARED_MODELS_ENV] = str(shared_models_dir())
        os.environ[models_folder.MODELS_DIR_ENV] = str(self.models_dir)
        os.environ[runs.ENV_VAR] = str(self.runs_db)
        os.environ[mine.ENV_VAR] = str(self.mine_db)
        os.environ[registry.DATA_DIR_ENV] = str(self.data_dir)

    def create(self) -> Workspace:
        """Make the folder (a person's first visit); the local workspace's folders exist."""
        if self.root is not None:
            (self.root / "models").mkdir(parents=True, exist_ok=True)
        return self

    # ----------------------------------------------------------------------- profile
    def write_profile(self, name: str = "", email: str = "") -> None:
        """Remember who this is, for the teacher's view: name, email and the last visit."""
        if self.root is None:
            return
        self.create()
        profile = {
            "name": str(name or "")[:_MAX_CLAIM_CHARS],
            "email": str(email or "")[:_MAX_CLAIM_CHARS],
            "last_seen": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        _write_json_atomic(self.root / PROFILE_FILE, profile)

    def profile(self) -> dict:
        """The name, email and last visit written at sign-in ({} when none or unreadable)."""
        if self.root is None:
            return {}
        path = self.root / PROFILE_FILE
        try:
            if path.is_symlink() or path.stat().st_size > _MAX_PROFILE_BYTES:
                return {}
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {key: str(data.get(key, ""))[:_MAX_CLAIM_CHARS] for key in PROFILE_KEYS}

    # ----------------------------------------------------------------------- quota
    def check_room(self, adding_bytes: int = 0) -> None:
        """``QuotaError`` if ``adding_bytes`` more would take this workspace over its quota."""
        if self.root is None:
            return
        quota = workspace_bytes()
        used = disk_used(self.root)
        if used + max(0, int(adding_bytes)) > quota:
            raise QuotaError(
                f"this workspace would use {_mib(used + adding_bytes)} of its "
                f"{_mib(quota)} quota ({_mib(used)} used now): delete models, runs or data sets "
                "first, or ask the teacher to raise NN_WORKSPACE_BYTES"
            )


PROFILE_KEYS = ("name", "email", "last_seen")


def _mib(n: int) -> str:
    return f"{n / 1024**2:,.1f} MiB"


def _write_json_atomic(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def disk_used(root: Path) -> int:
    """Bytes of the regular files below ``root``; links are counted as links, never followed."""
    total = 0
    for folder, _dirs, files in os.walk(root, followlinks=False):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                continue
    return total


def summarize(workspace: Workspace) -> dict:
    """What the teacher's view shows of one workspace: who (name, email, last visit), its
    models, runs and kept drawings counted, and the disk it uses against its quota. Nothing is
    created: a database that does not exist yet counts 0."""
    root = workspace.root
    models = models_folder.list_models(workspace.models_dir)
    n_runs = 0
    if workspace.runs_db.is_file():
        n_runs = len(runs.RunStore(workspace.runs_db).list_runs())
    n_drawings = 0
    if workspace.mine_db.is_file():
        n_drawings = mine.MineStore(workspace.mine_db).count()
    return {
        "id": workspace.id,
        **workspace.profile(),
        "models": len(models),
        "runs": n_runs,
        "drawings": n_drawings,
        "disk_bytes": disk_used(root) if root is not None else None,
        "quota_bytes": workspace_bytes() if root is not None else None,
    }


def list_workspaces() -> list[Workspace]:
    """Every person's workspace under ``workspaces_dir()``, by id (folders of other names and
    links are passed over)."""
    root = workspaces_dir()
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []
    return [
        Workspace(entry.name, entry)
        for entry in entries
        if _ID_PATTERN.fullmatch(entry.name) and entry.is_dir() and not entry.is_symlink()
    ]


def hand_out(source: Path, name: str) -> Path:
    """Copy the model file ``source`` into the shared models folder as ``name`` (a teacher
    handing a model to the class); ``FileExistsError`` if a shared model has that name."""
    folder = shared_models_dir()
    folder.mkdir(parents=True, exist_ok=True)
    ext = source.suffix.lstrip(".") or "npz"
    target = models_folder.model_path(folder, name, ext)
    if target.exists():
        raise FileExistsError(f"a shared model named {name!r} exists already")
    model_files.read_metadata(source)  # refuses a file that is not a readable model
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.link(tmp, target)  # fails if the name was taken meanwhile: never replaces
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target
