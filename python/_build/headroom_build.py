"""A PEP 517 build backend for the headroom package, in the tree and on the standard library
alone, so that `pip install ./python` needs nothing it would have to download (pip installs a
backend's requirements into an isolated environment from the index; this backend has none).

The package is pure Python: a wheel is the headroom/ folder plus the metadata below.
"""
from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "headroom"


def _project() -> Dict[str, str]:
    """name, version, description and requires-python from pyproject.toml's [project] table."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    table = text.split("[project]", 1)[1].split("\n[", 1)[0]
    values = dict(re.findall(r'^([a-z-]+)\s*=\s*"([^"]*)"', table, re.M))
    return {key: values[key] for key in ("name", "version", "description", "requires-python")}


def _metadata(project: Dict[str, str]) -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return (f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
            f"Summary: {project['description']}\nRequires-Python: {project['requires-python']}\n"
            f"Description-Content-Type: text/markdown\n\n{readme}")


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _wheel(directory: str, files: List[Tuple[str, bytes]]) -> str:
    project = _project()
    name, version = project["name"], project["version"]
    dist_info = f"{name}-{version}.dist-info"
    files = files + [
        (f"{dist_info}/METADATA", _metadata(project).encode()),
        (f"{dist_info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: headroom_build\nRoot-Is-Purelib: true\n"
                               b"Tag: py3-none-any\n"),
    ]
    record = "".join(f"{path},{_digest(data)},{len(data)}\n" for path, data in files)
    record += f"{dist_info}/RECORD,,\n"
    filename = f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(directory, filename), "w", zipfile.ZIP_DEFLATED) as wheel:
        for path, data in files + [(f"{dist_info}/RECORD", record.encode())]:
            wheel.writestr(zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return filename


def _package_files() -> List[Tuple[str, bytes]]:
    files = [(f"headroom/{p.relative_to(PACKAGE).as_posix()}", p.read_bytes())
             for p in sorted(PACKAGE.rglob("*"))
             if p.is_file() and "__pycache__" not in p.parts and p.suffix in (".py", ".typed")
             and p.name != "_origin.py"]
    # Installed from a headroom checkout: remember it, so the package finds that build tree.
    checkout = ROOT.parent
    if (checkout / "include" / "headroom.h").exists():
        files.append(("headroom/_origin.py",
                      f'"""Written by the build backend: the checkout this was installed from."""\n'
                      f"CHECKOUT = {str(checkout)!r}\n".encode()))
    return files


def get_requires_for_build_wheel(config_settings: Optional[dict] = None) -> List[str]:
    return []


def get_requires_for_build_sdist(config_settings: Optional[dict] = None) -> List[str]:
    return []


def get_requires_for_build_editable(config_settings: Optional[dict] = None) -> List[str]:
    return []


def build_wheel(wheel_directory: str, config_settings: Optional[dict] = None,
                metadata_directory: Optional[str] = None) -> str:
    return _wheel(wheel_directory, _package_files())


def build_editable(wheel_directory: str, config_settings: Optional[dict] = None,
                   metadata_directory: Optional[str] = None) -> str:
    """PEP 660 (`pip install -e ./python`): a .pth file that puts this folder on sys.path."""
    return _wheel(wheel_directory, [("headroom_editable.pth", (str(ROOT) + "\n").encode())])


def build_sdist(sdist_directory: str, config_settings: Optional[dict] = None) -> str:
    project = _project()
    base = f"{project['name']}-{project['version']}"
    filename = f"{base}.tar.gz"
    with tarfile.open(os.path.join(sdist_directory, filename), "w:gz") as sdist:
        for path in ["pyproject.toml", "README.md", "_build/headroom_build.py"] + \
                    [p for p, _ in _package_files() if p != "headroom/_origin.py"]:
            sdist.add(str(ROOT / path), arcname=f"{base}/{path}")
        info = _metadata(project).encode()
        entry = tarfile.TarInfo(f"{base}/PKG-INFO")
        entry.size = len(info)
        sdist.addfile(entry, io.BytesIO(info))
    return filename
