"""A model package's environment as users write it, turned into its replicas' Ray runtime_env.

The seed's "Install Custom Conda Env" hands a package's `environment.yml` to Ray's `conda`
runtime_env, which runs `conda env create` on each Ray node. modelhub's Ray image
(deploy/compose/ray.Dockerfile) has no conda, nor have the machines it is built on, and there Ray
cannot build the environment, so the replica never starts. So:

- `conda` route: Ray can run a `conda` (`Host.detect` looks where Ray looks:
  `$RAY_CONDA_HOME/bin/conda`, `$CONDA_EXE`'s folder, `conda` on `PATH`): environment.yml goes to
  Ray's `conda` runtime_env, as the seed meant. A `micromamba` alone does not count: Ray runs
  `conda env create` and `conda activate`, which micromamba does not provide under that name.
- `pip` route (no conda): what pip can meet is built with Ray's `pip` runtime_env (a virtualenv on
  the node's own Python): the `pip:` list as written, and each conda dependency under its PyPI name
  (`CONDA_RENAMED`; every other name is taken to be the same on PyPI, and pip says clearly when it
  is not). Conda syntax becomes pip's: `conda-forge::numpy` loses its channel, `numpy=1.26` becomes
  `numpy==1.26.*`, `numpy 1.26.4 py311h_0` loses its build string, `numpy>=1.2` stays.
- refusal: packages only conda has (`CONDA_ONLY`: CUDA toolkits, compilers, R, programs such as
  ffmpeg) with no conda to install them, a Python the nodes do not run, or a file that is not an
  environment. The deploy fails at once with a message naming each, before anything reaches Ray.

Libraries a conda environment carries for its own Python (`PROVIDED_BY_NODE`: the C runtime,
OpenSSL, BLAS builds, codecs) are left out of the pip route and listed as `skipped`: the node's
Python has its own and PyPI's wheels bundle theirs. Refusing them would refuse every
`conda env export`.

Python: a replica's environment is always built on the Ray nodes' Python (Ray's conda route pins
the env's `python` to it as well), so a `python` pin is checked against that version on both
routes. The nodes' Python is taken to be the deployer's: the embedded stack runs one Python, and
a Ray cluster runs one Python version on all its nodes.

Precedence: environment.yml is the package's whole environment on both routes; a requirements.txt
beside it is used only where the yml's `pip:` list names it (`-r requirements.txt`, as conda
itself reads it), and is then written into the list, because Ray copies the list elsewhere and a
relative path would not resolve there. A requirements.txt alone goes to the pip route as it is.

environment.yml is hostile input: it is read size-bounded with `yaml.safe_load`, only strings at
known places are used (so aliases and deep nesting cannot make the walk grow), and the conda route
gets a rebuilt dict of those strings, never the loaded document.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet

ENVIRONMENT_FILE = "environment.yml"
REQUIREMENTS_FILE = "requirements.txt"
MAX_FILE_BYTES = 256 * 1024
MAX_ENTRIES = 1000  # conda dependencies and pip lines together
MAX_ENTRY_CHARS = 1000

# Conda names whose PyPI distribution is named otherwise.
CONDA_RENAMED: dict[str, str] = {
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "pytorch-gpu": "torch",  # PyPI's Linux torch wheels carry CUDA themselves
    "py-opencv": "opencv-python-headless",  # headless: a replica has no display
    "opencv": "opencv-python-headless",
    "python-graphviz": "graphviz",  # conda's `graphviz` is the program (CONDA_ONLY)
    "pytables": "tables",
    "matplotlib-base": "matplotlib",
    "msgpack-python": "msgpack",
    "py-xgboost": "xgboost",
    "py-xgboost-cpu": "xgboost",
    "faiss": "faiss-cpu",
    "ruamel_yaml": "ruamel.yaml",
    "python-tzdata": "tzdata",
    "python-flatbuffers": "flatbuffers",
}

# Conda packages that only conda installs: programs and toolchains, not Python distributions.
CONDA_ONLY: frozenset[str] = frozenset(
    {
        "cudatoolkit",
        "cudatoolkit-dev",
        "cudnn",
        "nccl",
        "cutensor",
        "magma",
        "cuda",
        "pytorch-cuda",
        "gcc",
        "gxx",
        "gfortran",
        "clang",
        "clangxx",
        "compilers",
        "c-compiler",
        "cxx-compiler",
        "fortran-compiler",
        "binutils",
        "make",
        "ffmpeg",
        "graphviz",
        "git",
        "nodejs",
        "openjdk",
        "libopencv",
        "r-base",
    }
)
CONDA_ONLY_PREFIXES = ("cuda-", "libcu", "libnv", "gcc_", "gxx_", "gfortran_", "sysroot_", "r-")

# What a conda environment carries for its own Python and its BLAS build: the node's Python has
# its own, and PyPI's wheels bundle what they link (manylinux), so the pip route leaves them out.
PROVIDED_BY_NODE: frozenset[str] = frozenset(
    {
        "python",  # checked against the nodes' Python instead
        "pip",
        "_libgcc_mutex",
        "_openmp_mutex",
        "libgcc",
        "libgcc-ng",
        "libgomp",
        "libstdcxx",
        "libstdcxx-ng",
        "libgfortran",
        "libgfortran-ng",
        "libgfortran5",
        "ld_impl_linux-64",
        "ld_impl_linux-aarch64",
        "openssl",
        "ca-certificates",
        "ncurses",
        "readline",
        "libedit",
        "sqlite",
        "libsqlite",
        "tk",
        "xz",
        "liblzma",
        "zlib",
        "libzlib",
        "bzip2",
        "libffi",
        "libuuid",
        "libnsl",
        "libxcrypt",
        "libexpat",
        "expat",
        "libmpdec",
        "tzdata",
        "yaml",  # libyaml (PyYAML's wheel bundles it)
        "blas",
        "libblas",
        "libcblas",
        "liblapack",
        "liblapacke",
        "openblas",
        "libopenblas",
        "nomkl",
        "mkl",
        "mkl-service",
        "mkl_fft",
        "mkl_random",
        "intel-openmp",
        "llvm-openmp",
        "cpuonly",  # the pytorch channel's switch to its CPU build
        "jpeg",
        "libjpeg-turbo",
        "libpng",
        "libtiff",
        "libwebp",
        "libwebp-base",
        "libdeflate",
        "freetype",
        "lcms2",
        "openjpeg",
        "giflib",
        "lerc",
        "zstd",
        "lz4-c",
    }
)

_MATCH_SPEC = re.compile(
    r"""^(?:(?P<channel>[^\s:]+)::)?          # conda-forge::, nvidia/label/x::
        (?P<name>[A-Za-z0-9_][A-Za-z0-9_.\-]*)
        (?:\[(?P<keys>[^\]]*)\])?              # [version='>=1.2', build=...]
        (?P<rest>.*)$""",
    re.VERBOSE,
)
_BRACKET_VERSION = re.compile(r"""\bversion\s*=\s*(['"]?)(?P<v>[^'",\]]+(?:,[^'",\]]+)*)\1""")
_OPERATORS = ("==", "!=", ">=", "<=", "~=", ">", "<")
# `-r requirements.txt`, `--requirement=x`, `-rx`: pip's options that name a file to read
_PIP_FILE_OPTION = re.compile(r"^(?P<option>-r|--requirement|-c|--constraint)(?:=|\s+|(?=[^\s=-]))(?P<target>.*)$")


class Refused(Exception):
    """The environment cannot be built here; the message names what and why (shown to the user)."""


@dataclass(frozen=True)
class Host:
    """What the Ray nodes can build an environment with, as the deployer's node shows it."""

    conda: str | None = None  # the conda Ray would run
    micromamba: str | None = None  # found, but Ray's conda runtime_env cannot drive it
    python: tuple[int, int, int] = (sys.version_info.major, sys.version_info.minor, sys.version_info.micro)

    @classmethod
    def detect(cls, env: Mapping[str, str], which: Callable[..., str | None] = shutil.which) -> Host:
        """Look for conda where Ray's conda runtime_env looks on a node (its conda_utils):
        `$RAY_CONDA_HOME/bin/conda`, then `conda` beside `$CONDA_EXE`, then `conda` on PATH.

        RAY_CONDA_HOME is taken at its word, unchecked, as Ray takes it: it is the operator's
        statement about the Ray nodes, which may be other machines (compose's Ray containers).
        The other two are looked for on this node, which is what the embedded stack's nodes
        share (it passes them CONDA_* and RAY_*, and a PATH of the venv's and system's bin)."""
        path = env.get("PATH")
        conda: str | None
        if home := env.get("RAY_CONDA_HOME"):
            conda = str(Path(home) / "bin" / "conda")
        elif exe := env.get("CONDA_EXE"):
            conda = _executable(Path(exe).parent / "conda")
        else:
            conda = which("conda", path=path)
        micromamba = env.get("MAMBA_EXE") or which("micromamba", path=path)
        return cls(conda=conda, micromamba=micromamba)

    @property
    def python_version(self) -> str:
        return ".".join(map(str, self.python))

    def no_conda(self) -> str:
        """Why the conda route is closed, for messages."""
        where = "no conda on the deployer's node (looked for $RAY_CONDA_HOME/bin/conda, $CONDA_EXE, conda on PATH)"
        if self.micromamba:
            where += f"; micromamba at {self.micromamba} cannot stand in: Ray's conda runtime_env runs `conda`"
        return where


def _executable(path: Path) -> str | None:
    return str(path) if path.is_file() and os.access(path, os.X_OK) else None


@dataclass(frozen=True)
class Plan:
    """How a replica's environment is built: the route, and the runtime_env part Ray gets."""

    route: Literal["pip", "conda"]
    file: str  # the package file it was built from
    packages: tuple[str, ...]  # pip requirement lines (pip route) or conda dependencies (conda route)
    runtime_env: dict[str, Any] = field(default_factory=dict)  # {"pip": [...]} or {"conda": {...}}
    skipped: tuple[str, ...] = ()  # conda dependencies the node's Python already provides
    reason: str = ""

    def record(self) -> dict[str, Any]:
        """The deployment document's `environment` (API.md, GET /deployments/{name})."""
        return {
            "route": self.route,
            "file": self.file,
            "packages": list(self.packages),
            "skipped": list(self.skipped),
            "reason": self.reason,
        }


def from_requirements(root: Path) -> Plan:
    """A package with a requirements.txt only: pip installs its lines."""
    lines = requirement_lines(_read(root / REQUIREMENTS_FILE))
    return Plan(
        route="pip",
        file=REQUIREMENTS_FILE,
        packages=tuple(lines),
        runtime_env={"pip": lines} if lines else {},
        reason="pip installs requirements.txt",
    )


def from_environment(root: Path, host: Host, has_requirements: bool = False) -> Plan:
    """A package with an environment.yml: the conda route where Ray can run conda, else the pip
    route when pip can meet every need; Refused (naming each problem) otherwise."""
    env = parse_environment(_read(root / ENVIRONMENT_FILE))
    requirements = _read(root / REQUIREMENTS_FILE) if has_requirements else None
    pip = _pip_lines(env["pip"], requirements)
    problems = _python_problems(env["dependencies"], host)
    if host.conda:
        if problems:
            raise Refused("; ".join(problems))
        return _conda_plan(env, pip, host, has_requirements)
    return _pip_plan(env, pip, host, problems, has_requirements)


def parse_environment(text: str) -> dict[str, list[str]]:
    """environment.yml's `channels`, conda `dependencies` and `pip` lines, as lists of strings."""
    try:
        doc = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        raise Refused(f"{ENVIRONMENT_FILE} is not valid YAML: {_one_line(exc)}") from exc
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise Refused(f"{ENVIRONMENT_FILE} must be a mapping (name, channels, dependencies), not {_kind(doc)}")
    channels = _strings(doc.get("channels"), "channels")
    conda: list[str] = []
    pip: list[str] = []
    for dep in _list(doc.get("dependencies"), "dependencies"):
        if isinstance(dep, dict) and set(dep) == {"pip"}:
            pip += _strings(dep["pip"], "the pip: list")
        elif isinstance(dep, str):
            conda.append(_entry(dep, "dependencies"))
        else:
            raise Refused(f"{ENVIRONMENT_FILE}: a dependency must be a package spec or a pip: list, not {_kind(dep)}")
    if len(conda) + len(pip) > MAX_ENTRIES:
        raise Refused(f"{ENVIRONMENT_FILE} lists more than {MAX_ENTRIES} dependencies")
    return {"channels": channels, "dependencies": conda, "pip": pip}


def conda_to_pip(spec: str) -> tuple[str, str | None]:
    """One conda dependency as (conda name, pip requirement), the requirement None when the node
    provides it. Raises Refused for a conda-only package or a spec pip cannot say."""
    name, conda_version = split_match_spec(spec)
    key = name.lower()
    if key in PROVIDED_BY_NODE:
        return key, None
    if key in CONDA_ONLY or key.startswith(CONDA_ONLY_PREFIXES):
        raise Refused(f"{spec} (conda-only)")
    pypi = CONDA_RENAMED.get(key, name)
    requirement = f"{pypi}{pep440(conda_version, spec)}"
    try:
        Requirement(requirement)
    except InvalidRequirement as exc:
        raise Refused(f"{spec} (pip cannot read it as {requirement!r}: {_one_line(exc)})") from exc
    return key, requirement


def split_match_spec(spec: str) -> tuple[str, str]:
    """A conda MatchSpec's package name and conda version expression ("" for any): the channel
    and the build string dropped, `=1.26` (conda's "1.26 and its patches") written `1.26.*`."""
    match = _MATCH_SPEC.match(spec.strip())
    if match is None:
        raise Refused(f"{spec} (not a conda package spec)")
    version = _version_part(match["rest"])
    if match["keys"] and (bracket := _BRACKET_VERSION.search(match["keys"])):
        version = bracket["v"]
    return match["name"], version.strip()


def _version_part(rest: str) -> str:
    """`=1.26=build`, `==1.26`, `>=1.2,<2`, ` 1.26.4 build`: the version, the build dropped."""
    rest = re.sub(r"\s*([,|])\s*", r"\1", rest.strip())  # ">=1.2, <2" is one expression
    rest = re.sub(r"^(==|!=|>=|<=|~=|>|<)\s+", r"\1", rest)
    if not rest:
        return ""
    if rest.startswith("=") and not rest.startswith("=="):
        version = rest[1:].split("=")[0].split()[0] if rest[1:].strip() else ""
        return version if not version or version.endswith("*") else f"{version}.*"
    version = rest.split()[0]
    if version.startswith("=="):
        return "==" + version[2:].split("=")[0]
    return version


def pep440(version: str, spec: str) -> str:
    """A conda version expression as a PEP 440 specifier ("" for any version)."""
    if version in ("", "*"):
        return ""
    if "|" in version:
        raise Refused(f"{spec} (pip has no 'or' between versions)")
    clauses = []
    for clause in version.split(","):
        if not clause.startswith(_OPERATORS):
            clause = f"=={clause}"  # conda's bare version is an exact one
        if clause.endswith("*") and not clause.endswith(".*"):
            clause = clause[:-1].rstrip(".") + ".*"  # conda's 1.26* is 1.26.*
        clauses.append(clause)
    specifier = ",".join(clauses)
    try:
        SpecifierSet(specifier)
    except InvalidSpecifier as exc:
        raise Refused(f"{spec} (pip cannot read the version {version!r})") from exc
    return specifier


def requirement_lines(text: str) -> list[str]:
    """requirements.txt's lines for Ray's pip list: blank lines and comment lines left out."""
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def _pip_lines(lines: list[str], requirements: str | None) -> list[str]:
    """The pip: list with `-r requirements.txt` replaced by that file's lines (the only file it
    may name: Ray installs the list from a folder of its own, where no other file is)."""
    out: list[str] = []
    for line in lines:
        names_file = _PIP_FILE_OPTION.match(line)
        if names_file is None:
            out.append(line)
            continue
        option, target = names_file["option"], names_file["target"].strip().removeprefix("file:").removeprefix("./")
        if option in ("-r", "--requirement") and target == REQUIREMENTS_FILE:
            if requirements is None:
                raise Refused(f"{ENVIRONMENT_FILE}'s pip: list names {REQUIREMENTS_FILE}, which the package lacks")
            out += requirement_lines(requirements)
        else:
            raise Refused(f"{ENVIRONMENT_FILE}'s pip: list may name only the package's {REQUIREMENTS_FILE}: {line!r}")
    return out


def _python_problems(dependencies: list[str], host: Host) -> list[str]:
    problems = []
    for spec in dependencies:
        match = _MATCH_SPEC.match(spec)
        if match is None or match["name"].lower() != "python":
            continue
        _, version = split_match_spec(spec)
        if not any(host.python_version in SpecifierSet(pep440(alt, spec)) for alt in version.split("|")):
            problems.append(
                f"{ENVIRONMENT_FILE} asks for {spec} but the Ray nodes run Python "
                f"{host.python_version}, and a replica's environment is built on the nodes' Python: "
                f"pin python={host.python[0]}.{host.python[1]} or drop the pin"
            )
    return problems


def _conda_plan(env: dict[str, list[str]], pip: list[str], host: Host, has_requirements: bool) -> Plan:
    deps: list[Any] = list(env["dependencies"])
    if pip:
        deps.append({"pip": pip})
    conda = {"channels": env["channels"], "dependencies": deps} if env["channels"] else {"dependencies": deps}
    return Plan(
        route="conda",
        file=ENVIRONMENT_FILE,
        packages=tuple(env["dependencies"]) + tuple(pip),
        runtime_env={"conda": conda},
        reason=f"conda found at {host.conda} on the deployer's node; Ray runs it on each Ray node"
        + _unused_requirements(has_requirements, pip, env["pip"]),
    )


def _pip_plan(
    env: dict[str, list[str]], pip: list[str], host: Host, problems: list[str], has_requirements: bool
) -> Plan:
    requirements, skipped, conda_only = [], [], []
    for spec in env["dependencies"]:
        try:
            name, requirement = conda_to_pip(spec)
        except Refused as exc:
            conda_only.append(str(exc))
            continue
        if requirement is None:
            skipped.append(name)
        else:
            requirements.append(requirement)
    if conda_only:
        problems.append(
            f"{ENVIRONMENT_FILE} needs what pip cannot install: {', '.join(conda_only)}; "
            f"{host.no_conda()}. Install conda on the Ray nodes, or list PyPI packages instead "
            "(PyPI's torch wheels bring their own CUDA)"
        )
    if problems:
        raise Refused("; ".join(problems))
    packages = requirements + pip
    return Plan(
        route="pip",
        file=ENVIRONMENT_FILE,
        packages=tuple(packages),
        runtime_env={"pip": packages} if packages else {},
        skipped=tuple(skipped),
        reason=f"{host.no_conda()}; pip installs what it lists"
        + _unused_requirements(has_requirements, pip, env["pip"]),
    )


def _unused_requirements(has_requirements: bool, pip: list[str], written: list[str]) -> str:
    if not has_requirements or any(_PIP_FILE_OPTION.match(line) for line in written):
        return ""
    return (
        f"; {REQUIREMENTS_FILE} is not used: {ENVIRONMENT_FILE} is the whole environment "
        f"(add '-r {REQUIREMENTS_FILE}' to its pip: list to use both)"
    )


def _read(path: Path) -> str:
    with path.open("rb") as fh:
        data = fh.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise Refused(f"{path.name} is over {MAX_FILE_BYTES // 1024} KiB")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Refused(f"{path.name} is not UTF-8 text") from exc


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Refused(f"{ENVIRONMENT_FILE}: {what} must be a list, not {_kind(value)}")
    if len(value) > MAX_ENTRIES:
        raise Refused(f"{ENVIRONMENT_FILE}: {what} has more than {MAX_ENTRIES} entries")
    return value


def _strings(value: Any, what: str) -> list[str]:
    items = _list(value, what)
    if not all(isinstance(v, str) for v in items):
        raise Refused(f"{ENVIRONMENT_FILE}: {what} must hold only text")
    return [_entry(v, what) for v in items]


def _entry(value: str, what: str) -> str:
    value = value.strip()
    if not value or len(value) > MAX_ENTRY_CHARS or any(ord(c) < 32 for c in value):
        raise Refused(f"{ENVIRONMENT_FILE}: {what} has an empty, over-long or multi-line entry")
    return value


def _kind(value: Any) -> str:
    return type(value).__name__


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]
