"""Dependency checks for the wheels carried to the GPU machine (scripts/gpu/).

Two modes, both standard library only (``packaging`` comes from the
interpreter, or from pip's vendored copy):

``closure WHEEL_DIR DEVICE_LIST [--python 3.12] [--fallback DIR]``
    Here, before carrying: every ``Requires-Dist`` of every wheel in
    WHEEL_DIR (markers evaluated for CPython PYTHON on x86-64 Linux, no
    extras) must be met by another wheel there (name and version) or be a
    package named in DEVICE_LIST (one name a line: what the GPU machine's
    image has; its version is checked there, by ``installed``). No wheel
    may be a package the image already has, and each package may have only
    one wheel. Wheels in the fallback DIR are newer copies of packages the
    image has (installed there only where its version is too old); they
    must meet what asks for them. Prints the table; exits 1 on any problem.

``installed SITE [--missing FILE]``
    On the GPU machine, after ``pip install --target SITE``: every
    distribution in SITE must be the one Python imports (SITE first on
    sys.path), and each of its requirements must be installed at a version
    that meets it. Unmet requirement names go to FILE (for the fallback
    wheels); exits 1 when any is unmet.
"""

from __future__ import annotations

import argparse
import re
import sys
import zipfile
from email.parser import HeaderParser
from pathlib import Path

try:
    from packaging.markers import default_environment
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import Version
except ImportError:  # a bare interpreter: pip's copy
    from pip._vendor.packaging.markers import default_environment
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name
    from pip._vendor.packaging.version import Version


def _metadata(text: str):
    return HeaderParser().parsestr(text)


def _wheel_metadata(path: Path):
    with zipfile.ZipFile(path) as zf:
        names = [n for n in zf.namelist()
                 if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
        if len(names) != 1:
            raise SystemExit(f"{path.name}: expected one */METADATA, found {names}")
        return _metadata(zf.read(names[0]).decode("utf-8"))


def _target_env(python: str) -> dict[str, str]:
    env = default_environment()
    major, minor = python.split(".")[:2]
    env.update(
        python_version=f"{major}.{minor}",
        python_full_version=f"{major}.{minor}.0",
        implementation_name="cpython",
        platform_python_implementation="CPython",
        sys_platform="linux",
        platform_system="Linux",
        os_name="posix",
        platform_machine="x86_64",
        extra="",
    )
    return env


def _applies(req: Requirement, env: dict[str, str]) -> bool:
    return req.marker is None or req.marker.evaluate(env)


def _read_wheels(folder: Path, env: dict[str, str], python: str, problems: list[str]):
    wheels: dict[str, tuple[Version, list[Requirement], str]] = {}
    for path in sorted(folder.glob("*.whl")):
        meta = _wheel_metadata(path)
        name = canonicalize_name(meta["Name"])
        if name in wheels:
            problems.append(f"two wheels of {name}: {wheels[name][2]} and {path.name}")
        rp = meta.get("Requires-Python")
        if rp and Version(env["python_full_version"]) not in Requirement(f"x{rp}").specifier:
            problems.append(f"{path.name}: Requires-Python {rp} excludes {python}")
        reqs = [Requirement(r) for r in meta.get_all("Requires-Dist") or []]
        wheels[name] = (Version(meta["Version"]), [r for r in reqs if _applies(r, env)], path.name)
    return wheels


def closure(wheel_dir: Path, device_list: Path, python: str, fallback_dir: Path | None) -> int:
    device = {canonicalize_name(line.strip()) for line in device_list.read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    env = _target_env(python)
    problems: list[str] = []
    wheels = _read_wheels(wheel_dir, env, python, problems)
    fallback = _read_wheels(fallback_dir, env, python, problems) if fallback_dir else {}
    if not wheels:
        problems.append(f"no wheels in {wheel_dir}")
    for name, (_, _, fname) in wheels.items():
        if name in device:
            problems.append(f"{fname}: {name} is on the GPU machine already; do not carry it")
    for name, (_, _, fname) in fallback.items():
        if name not in device:
            problems.append(f"fallback {fname}: {name} is not on the GPU machine; "
                            "it belongs in the main folder")
    print(f"{'wheel':<64} needs (Python {python}, Linux)")
    for group in (wheels, fallback):
        for name, (_, reqs, fname) in sorted(group.items()):
            tag = "fallback/" if group is fallback else ""
            print(f"{tag + fname:<64} {', '.join(str(r) for r in reqs) or '-'}")
            for r in reqs:
                dep = canonicalize_name(r.name)
                if dep in wheels:
                    have = wheels[dep][0]
                    if r.specifier and not r.specifier.contains(have, prereleases=True):
                        problems.append(f"{name} needs {r}, the wheel is {dep} {have}")
                elif dep in device:
                    if dep in fallback and r.specifier and not r.specifier.contains(
                            fallback[dep][0], prereleases=True):
                        problems.append(f"{name} needs {r}, the fallback is {dep} "
                                        f"{fallback[dep][0]}")
                else:
                    problems.append(f"{name} needs {r}: neither a wheel here "
                                    "nor on the GPU machine")
    for p in problems:
        print(f"PROBLEM: {p}", file=sys.stderr)
    if not problems:
        print(f"closed: {len(wheels)} wheels + {len(fallback)} fallbacks; every other "
              "requirement is a package of the GPU machine's image")
    return 1 if problems else 0


def installed(site: Path, missing_file: Path | None) -> int:
    from importlib import metadata

    site = site.resolve()
    problems: list[str] = []
    unmet: set[str] = set()
    env = default_environment()
    env["extra"] = ""
    dists = sorted(site.glob("*.dist-info"))
    if not dists:
        problems.append(f"no *.dist-info in {site}")
    for info in dists:
        meta = _metadata((info / "METADATA").read_text(encoding="utf-8"))
        name, version = meta["Name"], meta["Version"]
        found = metadata.distribution(name)
        where = Path(str(found.locate_file(""))).resolve()
        if where != site or found.version != version:
            problems.append(f"{name} {version} in {site} is shadowed by {found.version} in {where}")
        for text in meta.get_all("Requires-Dist") or []:
            req = Requirement(text)
            if not _applies(req, env):
                continue
            try:
                have = metadata.version(req.name)
            except metadata.PackageNotFoundError:
                problems.append(f"{name} needs {req}: not installed")
                unmet.add(canonicalize_name(req.name))
                continue
            if req.specifier and not req.specifier.contains(Version(have), prereleases=True):
                problems.append(f"{name} needs {req}: {have} is installed")
                unmet.add(canonicalize_name(req.name))
    if missing_file is not None:
        missing_file.write_text("".join(f"{n}\n" for n in sorted(unmet)))
    for p in problems:
        print(f"PROBLEM: {p}", file=sys.stderr)
    print(f"{len(dists)} distributions in {site}: "
          + ("requirements met" if not problems else f"{len(problems)} problems"))
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    c = sub.add_parser("closure")
    c.add_argument("wheel_dir", type=Path)
    c.add_argument("device_list", type=Path)
    c.add_argument("--python", default="3.12")
    c.add_argument("--fallback", type=Path, help="folder of wheels that may replace the image's")
    i = sub.add_parser("installed")
    i.add_argument("site", type=Path)
    i.add_argument("--missing", type=Path)
    args = parser.parse_args(argv)
    if args.mode == "closure":
        return closure(args.wheel_dir, args.device_list, args.python, args.fallback)
    return installed(args.site, args.missing)


if __name__ == "__main__":
    sys.exit(main())
