"""What a run captures without being asked: source, git state, environment, host."""

from __future__ import annotations

import json
import os
import platform
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import blake3

from .errors import InvalidInput
from .hashing import digest_file, format_digest
from .store.records import Environment
from .validation import REPRODUCES_TAG as REPRODUCES_TAG  # re-exported
from .validation import UNTRACKED_SOURCE_TAG as UNTRACKED_SOURCE_TAG  # re-exported
from .validation import WORKDIR_TAG as WORKDIR_TAG  # re-exported

NOTEBOOK_ENV = "MLOPS_NOTEBOOK_PATH"  # set by `mlops run` (and pipelines) for the kernel
# Set by `mlops reproduce` for the kernel it starts: the uuid of the run re-executed, and
# the scratch folder that stands in for the project's root (paths are recorded from it).
REPRODUCES_ENV = "MLOPS_REPRODUCES"
REPRODUCE_ROOT_ENV = "MLOPS_REPRODUCE_ROOT"
_GIT_TIMEOUT = 10


@dataclass(frozen=True)
class Source:
    """Where the code of a run lives: a notebook, a script, or an interactive session."""

    kind: str  # jupyter | papermill | script | interactive
    path: Path | None


@dataclass(frozen=True)
class GitState:
    commit: str | None
    branch: str | None
    dirty: bool
    diff: bytes  # `git diff HEAD --binary`; empty when clean
    source_tracked: bool | None = None  # whether git tracks the run's source (None: not asked)


def detect_source(environ: dict[str, str] | None = None) -> Source:
    """Find the notebook or script being run, trying the most specific signal first."""
    env = os.environ if environ is None else environ
    explicit = env.get(NOTEBOOK_ENV)
    if explicit:
        return Source("papermill", Path(explicit).resolve())
    session = env.get("JPY_SESSION_NAME")
    if session:
        return Source("jupyter", _resolve_session_path(session))
    papermill_input = _papermill_input_from_parent()
    if papermill_input is not None:
        return Source("papermill", papermill_input)
    main = sys.modules.get("__main__")
    main_file = getattr(main, "__file__", None)
    if main_file and Path(main_file).suffix == ".py" and "ipykernel" not in main_file:
        return Source("script", Path(main_file).resolve())
    return Source("interactive", None)


def _resolve_session_path(session: str) -> Path | None:
    """`JPY_SESSION_NAME` is absolute in recent servers, relative to the server root before."""
    candidate = Path(session)
    if candidate.is_absolute():
        return candidate
    cwd = Path.cwd()
    for path in (cwd / candidate, cwd / candidate.name):
        if path.exists():
            return path.resolve()
    return cwd / candidate.name


def _papermill_input_from_parent() -> Path | None:
    """Under the `papermill` CLI the kernel's parent is `papermill IN.ipynb OUT.ipynb`."""
    try:
        raw = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
    except OSError:
        return None
    args = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
    # `papermill ...`, `python /venv/bin/papermill ...` or `python -m papermill ...`
    if not any(Path(a).name == "papermill" or a == "papermill" for a in args[:3]):
        return None
    notebooks = [a for a in args if a.endswith(".ipynb")]
    if not notebooks:
        return None
    try:
        parent_cwd = Path(os.readlink(f"/proc/{os.getppid()}/cwd"))
    except OSError:
        parent_cwd = Path.cwd()
    return (parent_cwd / notebooks[0]).resolve()


def notebook_code_digest(path: Path) -> str:
    """Digest of a notebook's code cells only: outputs, metadata and markdown don't count.

    Read with `json` rather than nbformat (1.6 s to import).
    """
    with open(path, encoding="utf-8") as f:
        try:
            notebook = json.load(f)
        except ValueError as exc:
            raise InvalidInput(f"{path}: not a notebook: not JSON ({exc})") from None
    cells = notebook.get("cells", []) if isinstance(notebook, dict) else None
    if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
        raise InvalidInput(f"{path}: not a notebook: its 'cells' is not a list of cells")
    hasher = blake3.blake3()
    hasher.update(b"jupyter-mlops code cells v1\n")
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        text = "".join(source) if isinstance(source, list) else str(source)
        encoded = text.encode("utf-8")
        hasher.update(len(encoded).to_bytes(8, "little") + encoded)
    return format_digest(hasher.hexdigest())


def code_digest(source: Source) -> str | None:
    if source.path is None or not source.path.is_file():
        return None
    if source.path.suffix == ".ipynb":
        try:
            return notebook_code_digest(source.path)
        except (OSError, ValueError, TypeError, AttributeError, InvalidInput):
            return None  # not a notebook we can read: the run simply has no code digest
    return digest_file(source.path)


def git_state(cwd: Path, source: Path | None = None,
              is_tracked: Callable[[Path, Path], bool | None] | None = None
              ) -> GitState | None:
    """Commit, branch, dirty flag and uncommitted diff; None outside a git work tree.

    With `source` (the run's notebook or script), also whether git tracks it: a
    file git does not track is in no commit and no diff, so the state is dirty
    whatever `git status` says of the tracked files. `is_tracked` answers that
    question (default: ask git; `CaptureCache` remembers the answer)."""
    try:
        status = subprocess.run(
            ["git", "status", "--porcelain=v2", "--branch", "--untracked-files=no"],
            cwd=cwd, capture_output=True, timeout=_GIT_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if status.returncode != 0:
        return None
    commit = branch = None
    dirty = False
    for line in status.stdout.decode(errors="replace").splitlines():
        if line.startswith("# branch.oid "):
            oid = line.split(" ", 2)[2]
            commit = None if oid == "(initial)" else oid
        elif line.startswith("# branch.head "):
            head = line.split(" ", 2)[2]
            branch = None if head == "(detached)" else head
        elif not line.startswith("#"):
            dirty = True
    diff = b""
    if dirty and commit:
        result = subprocess.run(["git", "diff", "HEAD", "--binary"], cwd=cwd,
                                capture_output=True, timeout=_GIT_TIMEOUT, check=False)
        diff = result.stdout if result.returncode == 0 else b""
    tracked = None
    if source is not None:
        tracked = (is_tracked or source_tracked)(cwd, source)
    return GitState(commit=commit, branch=branch, dirty=dirty or tracked is False, diff=diff,
                    source_tracked=tracked)


def source_tracked(cwd: Path, source: Path) -> bool | None:
    """Whether git's index lists `source` (None: git could not say)."""
    try:
        listed = subprocess.run(["git", "ls-files", "--error-unmatch", "--", str(source)],
                                cwd=cwd, capture_output=True, timeout=_GIT_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return listed.returncode == 0


def _index_key(cwd: Path, source: Path, settled_ns: int) -> tuple[object, ...] | None:
    """What whether git tracks `source` depends on: the index file, identified by its
    inode, size and times (git replaces it whole, by rename, on every change). None
    (ask git) when the index can't be found simply (`GIT_DIR` or `GIT_INDEX_FILE`
    set, a `.git` file of an unusual shape, no index yet) or changed just now."""
    if "GIT_DIR" in os.environ or "GIT_INDEX_FILE" in os.environ:
        return None
    folder = cwd.resolve()
    for candidate in (folder, *folder.parents):
        dot_git = candidate / ".git"
        try:
            if dot_git.is_dir():
                index = dot_git / "index"
            elif dot_git.is_file():  # a worktree or submodule: "gitdir: PATH"
                text = dot_git.read_text(encoding="utf-8", errors="replace").strip()
                if not text.startswith("gitdir: "):
                    return None
                index = (candidate / text[len("gitdir: "):]) / "index"
            else:
                continue
            info = index.stat()
        except OSError:
            return None
        if not _settled(info, settled_ns):
            return None
        return (str(folder), str(source), str(index), info.st_ino, info.st_size,
                info.st_mtime_ns, info.st_ctime_ns)
    return None


def _settled(info: os.stat_result, settled_ns: int) -> bool:
    """Whether a file last changed long enough ago that a change now would show in its
    times. File times tick coarsely (a few ms), so a change made in the same tick as
    the one just read would leave them equal: a key of times is trusted only once
    they are older than that ("racy git", which git solves the same way)."""
    return time.time_ns() - max(info.st_mtime_ns, info.st_ctime_ns) > settled_ns


def installed_packages() -> dict[str, str]:
    """Installed distributions and versions, read from `*.dist-info` folder names.

    Ten times faster than `importlib.metadata.distributions()` (which parses
    every METADATA file): the wheel spec puts the normalized name and the
    version in the folder name. Names are normalized as in PEP 503.
    """
    packages: dict[str, str] = {}
    for entry in sys.path:
        try:
            listing = os.scandir(entry or ".")
        except OSError:
            continue
        with listing:
            for item in listing:
                if not item.name.endswith(".dist-info"):
                    continue
                stem = item.name[: -len(".dist-info")]
                name, sep, version = stem.rpartition("-")
                if sep and name:
                    packages.setdefault(re.sub(r"[-_.]+", "-", name).lower(), version)
    return packages


def environment() -> Environment:
    """The Python version and every installed distribution's version."""
    return environment_of(platform.python_version(), installed_packages())


def environment_of(python: str, packages: Mapping[str, str]) -> Environment:
    """The environment of a Python version and its packages, with the digest of both:
    the same bytes give the same digest wherever it is computed (a team server
    recomputes it from what a client sends, never trusting the client's)."""
    payload = json.dumps({"python": python, "packages": dict(packages)},
                         sort_keys=True).encode()
    return Environment(digest=format_digest(blake3.blake3(payload).hexdigest()), python=python,
                       packages=dict(sorted(packages.items())))


class CaptureCache:
    """`environment()` and `git_state()` for a long-lived process (a kernel starting
    many runs), each answer reused only while what it depends on is unchanged.

    - The packages are read again when a folder on `sys.path` changed: installing,
      upgrading or removing a distribution adds or removes a `*.dist-info` folder,
      which changes its parent folder's modification time.
    - `git status` runs every time (any tracked file may change); whether git tracks
      the run's source is asked again only when the index file changed.

    Times younger than `settled_seconds` are never trusted (see `_settled`).
    """

    def __init__(self, settled_seconds: float = 2.0) -> None:
        self._settled_ns = int(settled_seconds * 1e9)
        self._packages_key: tuple[object, ...] | None = None
        self._environment: Environment | None = None
        self._tracked: dict[tuple[object, ...], bool] = {}

    def environment(self) -> Environment:
        key = self._path_folders_key()
        if self._environment is None or key is None or key != self._packages_key:
            self._environment = environment()
            self._packages_key = key
        return self._environment

    def git_state(self, cwd: Path, source: Path | None = None) -> GitState | None:
        return git_state(cwd, source, self._is_tracked)

    def _is_tracked(self, cwd: Path, source: Path) -> bool | None:
        key = _index_key(cwd, source, self._settled_ns)
        if key is not None and key in self._tracked:
            return self._tracked[key]
        tracked = source_tracked(cwd, source)
        if key is not None and tracked is not None:
            if len(self._tracked) >= 64:  # a source or two a session: never grows much
                self._tracked.clear()
            self._tracked[key] = tracked
        return tracked

    def _path_folders_key(self) -> tuple[object, ...] | None:
        """The `sys.path` folders' identities and times; None while one changed just now."""
        key: list[object] = []
        for entry in sys.path:
            try:
                info = os.stat(entry or ".")
            except OSError:
                key.append((entry, None))
                continue
            if not _settled(info, self._settled_ns):
                return None
            key.append((entry, info.st_ino, info.st_mtime_ns, info.st_ctime_ns))
        return tuple(key)


def host() -> str:
    return socket.gethostname()


def user() -> str:
    """The OS account running this process: the identity of CLI actions.

    Read from the password database by effective uid, never from `$USER`,
    `$LOGNAME` or `getpass` (which read the environment, so anyone could name
    themselves). A uid without an entry (e.g. a container) is its number.
    """
    import pwd

    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


PAPERMILL_HEADER = "# Parameters"  # the first line of the cell papermill injects


def injected_parameters() -> dict[str, object]:
    """The parameters papermill injected into this IPython kernel: the assignments of
    literal values in its `# Parameters` cell, from the kernel's input history
    (`In`). Empty outside IPython, or when no such cell ran. Never raises."""
    ipython_module = sys.modules.get("IPython")  # never imported here for a script
    shell = ipython_module.get_ipython() if ipython_module is not None else None
    if shell is None:
        return {}
    found: dict[str, object] = {}
    for cell in shell.user_ns.get("In") or ():
        if isinstance(cell, str) and cell.lstrip().startswith(PAPERMILL_HEADER):
            found.update(_literal_assignments(cell))
    return found


NOT_LITERAL = object()  # `assignments`: the name is assigned an expression, not a literal


def assignments(code: str) -> dict[str, object]:
    """The names `code` assigns at its top level (`name = ...`, `name: T = ...`), each
    with its literal value, or `NOT_LITERAL` for an expression. Nothing is evaluated;
    code that does not parse (or is nested past the parser's depth) assigns nothing."""
    import ast

    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return {}
    found: dict[str, object] = {}
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, ast.AnnAssign) and node.value else []
        for target in targets:
            if isinstance(target, ast.Name):
                try:
                    found[target.id] = ast.literal_eval(node.value)  # type: ignore[arg-type]
                except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                    found[target.id] = NOT_LITERAL
    return found


def _literal_assignments(code: str) -> dict[str, object]:
    """`name = literal` lines of `code` (what papermill's Python translator writes)."""
    return {name: value for name, value in assignments(code).items()
            if value is not NOT_LITERAL}


def working_folder(root: Path) -> str | None:
    """The working directory relative to `root` (posix), absolute when outside it, or
    None when it is `root` itself: where a notebook's relative paths start, which
    `mlops reproduce` needs (JupyterLab starts a kernel in the notebook's folder,
    `mlops run` and pipelines in the project root)."""
    cwd = Path.cwd().resolve()
    try:
        relative = cwd.relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(cwd)
    return None if relative == "." else relative


def reproducing() -> tuple[str, Path] | None:
    """(uuid of the run being re-executed, the scratch root) inside a kernel
    `mlops reproduce` started, else None."""
    original, root = os.environ.get(REPRODUCES_ENV), os.environ.get(REPRODUCE_ROOT_ENV)
    if not original or not root:
        return None
    return original, Path(root)
