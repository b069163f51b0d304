"""Offline dependency gate: every installed package named in advisory-floors.txt is at or
above its floor, and pyproject.toml declares no lower floor (dependencies and extras).

It needs no network, so it always decides (pip-audit, the online half, cannot run everywhere;
docs/security.md). Standard library only: it runs in any venv.
"""

from __future__ import annotations

import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent


_VERSION = re.compile(
    r"(\d+(?:\.\d+)*)(?:[-_.]?(a|b|c|rc|alpha|beta|pre|preview|dev)[-_.]?\d*)?(?:[-_.]?post[-_.]?(\d+))?"
)


def key(version: str) -> tuple[int, ...]:
    """Order of X.Y.Z[.postN] versions: 2.33 == 2.33.0, a pre-release (3.14.4rc1) sorts below
    its release, a post-release above it, a local tag (+abc) is ignored."""
    m = _VERSION.match(version.strip().lower())
    if m is None:
        return (0,)
    release = [int(p) for p in m[1].split(".")][:6]
    release += [0] * (6 - len(release))
    return (*release, -1 if m[2] else int(m[3] or 0))


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_floors(path: Path) -> dict[str, tuple[str, str]]:
    floors: dict[str, tuple[str, str]] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        fields = raw.split("#", 1)[0].split()
        if fields:
            floors[norm(fields[0])] = (fields[1], " ".join(fields[2:]))
    return floors


def main() -> int:
    floors = read_floors(HERE / "advisory-floors.txt")
    bad: list[str] = []
    installed = {norm(d.metadata["Name"]): d.version for d in metadata.distributions()}
    for name, (floor, ids) in sorted(floors.items()):
        have = installed.get(name)
        if have is not None and key(have) < key(floor):
            bad.append(f"{name} {have} is installed, below {floor} ({ids})")
    project = tomllib.loads((HERE.parent / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        declared += extra
    for req in declared:
        m = re.match(r"\s*([A-Za-z0-9_.-]+)\s*(?:\[[^\]]*\])?\s*([^;]*)", req)
        if not m or norm(m[1]) not in floors:
            continue
        floor = floors[norm(m[1])][0]
        lower = re.search(r">=\s*([0-9][0-9.a-z]*)", m[2])
        if lower is None or key(lower[1]) < key(floor):
            bad.append(f"pyproject declares {req!r}: its floor must be at least {floor}")
    for problem in bad:
        print(f"dependency-floors: FAIL: {problem}", file=sys.stderr)
    if not bad:
        print(f"dependency-floors: ok ({len(floors)} packages checked offline)", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
