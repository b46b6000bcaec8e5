"""Validate the sidebar app and build the zip that Zendesk's "Upload private app" accepts.

Zendesk requires manifest.json, translations/<defaultLocale>.json, assets/logo.png (320×320)
and assets/logo-small.png (128×128) at the top of the zip. An app that sends a secure setting
may only call the domains in `domainWhitelist`, so the package names the product's host there;
it also makes the product's address the default of the `api_url` setting.
"""

from __future__ import annotations

import json
import re
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

APP_DIR = Path(__file__).parent
# Files of the app itself; the Python beside them is the packager, not part of the upload.
APP_FILES = ("manifest.json", "translations", "assets")
LOGOS = {"assets/logo.png": 320, "assets/logo-small.png": 128}
REQUIRED_TRANSLATIONS = ("name", "short_description", "long_description", "installation_instructions")
# Secure settings are only sent through Zendesk's proxy, to these placeholders (ZAF request docs).
SECRET_PLACEHOLDER = "{{setting.shared_secret}}"
ZIP_TIME = (2024, 1, 1, 0, 0, 0)  # fixed, so the same sources give the same zip


class AppInvalid(Exception):
    """The app's files would be refused by Zendesk, or could not work."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class Package:
    path: Path
    files: list[str] = field(default_factory=list)
    manifest: dict = field(default_factory=dict)


def validate(app_dir: Path = APP_DIR, api_url: str | None = None) -> dict:
    """The manifest, checked with everything it refers to; raises AppInvalid listing every problem."""
    problems: list[str] = []
    try:
        manifest = json.loads((app_dir / "manifest.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AppInvalid(["manifest.json is missing"]) from None
    except ValueError as exc:
        raise AppInvalid([f"manifest.json is not valid JSON: {exc}"]) from None

    for key in ("name", "author", "defaultLocale", "location", "version", "frameworkVersion"):
        if key not in manifest:
            problems.append(f"manifest.json: {key!r} is required")
    author = manifest.get("author") or {}
    if not (isinstance(author, dict) and author.get("name") and author.get("email")):
        problems.append("manifest.json: author needs a name and an email")
    if manifest.get("frameworkVersion") != "2.0":
        problems.append("manifest.json: frameworkVersion must be \"2.0\" (ZAF v2)")

    sidebar = ((manifest.get("location") or {}).get("support") or {}).get("ticket_sidebar")
    page = sidebar.get("url") if isinstance(sidebar, dict) else sidebar
    if not isinstance(page, str) or not page:
        problems.append("manifest.json: location.support.ticket_sidebar needs a url")
    elif not (app_dir / page).is_file():
        problems.append(f"manifest.json: the ticket sidebar page {page} does not exist")
    else:
        problems += _check_page(app_dir, page)

    parameters = manifest.get("parameters") or []
    names = [p.get("name") for p in parameters if isinstance(p, dict)]
    if len(names) != len(set(names)):
        problems.append("manifest.json: parameter names must be unique")
    by_name = {p.get("name"): p for p in parameters if isinstance(p, dict)}
    if "api_url" not in by_name:
        problems.append("manifest.json: the api_url parameter is missing")
    if not (by_name.get("shared_secret") or {}).get("secure"):
        problems.append("manifest.json: shared_secret must be a secure parameter")

    locale = manifest.get("defaultLocale", "en")
    translations_path = app_dir / "translations" / f"{locale}.json"
    try:
        translations = json.loads(translations_path.read_text(encoding="utf-8")).get("app", {})
    except FileNotFoundError:
        problems.append(f"translations/{locale}.json is missing (defaultLocale is {locale!r})")
        translations = {}
    except ValueError as exc:
        problems.append(f"translations/{locale}.json is not valid JSON: {exc}")
        translations = {}
    for key in REQUIRED_TRANSLATIONS:
        if translations and not translations.get(key):
            problems.append(f"translations/{locale}.json: app.{key} is required")
    for name in names:
        if translations and not ((translations.get("parameters") or {}).get(name) or {}).get("label"):
            problems.append(f"translations/{locale}.json: app.parameters.{name}.label is required")

    for logo, size in LOGOS.items():
        problems += _check_png(app_dir / logo, logo, size)

    if api_url is not None:
        parts = urlsplit(api_url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            problems.append(f"--url must be an http(s) address, got {api_url!r}")
        elif parts.scheme != "https" and parts.hostname not in ("localhost", "127.0.0.1"):
            problems.append("--url must use https: Zendesk's proxy sends the signed token there")
    if problems:
        raise AppInvalid(problems)
    return manifest


def build(output: Path, api_url: str, app_dir: Path = APP_DIR) -> Package:
    """Validate, then write the upload zip with the product's host allowed for secure requests."""
    manifest = validate(app_dir, api_url)
    host = urlsplit(api_url).hostname
    manifest["domainWhitelist"] = sorted(set(manifest.get("domainWhitelist") or []) | {host})
    for parameter in manifest["parameters"]:
        if parameter["name"] == "api_url":
            parameter["default"] = api_url.rstrip("/")
    files = sorted(
        str(path.relative_to(app_dir))
        for top in APP_FILES
        for path in ([app_dir / top] if (app_dir / top).is_file() else sorted((app_dir / top).rglob("*")))
        if path.is_file() and not path.name.startswith(".")
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in files:
            data = (json.dumps(manifest, indent=2) + "\n").encode() if name == "manifest.json" else (app_dir / name).read_bytes()
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return Package(path=output, files=files, manifest=manifest)


def _check_page(app_dir: Path, page: str) -> list[str]:
    """The sidebar page loads the ZAF SDK and only local files that exist; its script uses the secret safely."""
    problems = []
    html = (app_dir / page).read_text(encoding="utf-8")
    if "zendesk_app_framework_sdk/2." not in html:
        problems.append(f"{page} does not load the ZAF SDK 2.x")
    for ref in re.findall(r'(?:src|href)="([^"]+)"', html):
        if not re.match(r"^(https?:)?//", ref) and not (app_dir / Path(page).parent / ref).is_file():
            problems.append(f"{page} refers to {ref}, which does not exist")
    scripts = [app_dir / Path(page).parent / ref for ref in re.findall(r'<script src="([^":]+)"', html)]
    code = "\n".join(path.read_text(encoding="utf-8") for path in scripts if path.is_file())
    if SECRET_PLACEHOLDER in code and "secure: true" not in code:
        problems.append(f"{page}: {SECRET_PLACEHOLDER} is used without `secure: true` and would leak")
    return problems


def _check_png(path: Path, name: str, size: int) -> list[str]:
    try:
        head = path.read_bytes()[:24]
    except FileNotFoundError:
        return [f"{name} is missing ({size}×{size} PNG)"]
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return [f"{name} is not a PNG"]
    width, height = struct.unpack(">II", head[16:24])
    if (width, height) != (size, size):
        return [f"{name} is {width}×{height}; Zendesk wants {size}×{size}"]
    return []
