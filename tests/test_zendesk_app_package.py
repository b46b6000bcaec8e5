"""`helpdesk-bot zendesk-app package`: the upload zip, and what the validator refuses."""

from __future__ import annotations

import json
import shutil
import zipfile

import pytest
from click.testing import CliRunner

from helpdesk_bot.ops.cli import main
from integrations.zendesk_app.package import APP_DIR, AppInvalid, build, validate


def test_package_builds_the_upload_zip(tmp_path):
    output = tmp_path / "app.zip"
    result = CliRunner().invoke(main, ["zendesk-app", "package", "--url", "https://bot.example.com/", "-o", str(output)])
    assert result.exit_code == 0, result.output
    assert "secure requests allowed to bot.example.com" in result.output
    with zipfile.ZipFile(output) as archive:
        names = sorted(archive.namelist())
        manifest = json.loads(archive.read("manifest.json"))
    assert names == ["assets/iframe.html", "assets/logo-small.png", "assets/logo.png", "assets/main.css",
                     "assets/main.js", "manifest.json", "translations/en.json"]  # no Python, nothing else
    assert manifest["domainWhitelist"] == ["bot.example.com"]
    assert manifest["location"]["support"]["ticket_sidebar"]["url"] == "assets/iframe.html"
    parameters = {p["name"]: p for p in manifest["parameters"]}
    assert parameters["api_url"]["default"] == "https://bot.example.com"
    assert parameters["shared_secret"]["secure"] is True and "default" not in parameters["shared_secret"]

    again = tmp_path / "again.zip"
    build(again, "https://bot.example.com/")
    assert again.read_bytes() == output.read_bytes()  # the same sources give the same zip


@pytest.fixture
def app_copy(tmp_path):
    target = tmp_path / "zendesk_app"
    shutil.copytree(APP_DIR, target, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return target


def edit_json(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(("breakage", "problem"), [
    (lambda d: (d / "assets/logo-small.png").unlink(), "assets/logo-small.png is missing"),
    (lambda d: shutil.copy(d / "assets/logo.png", d / "assets/logo-small.png"), "is 320×320; Zendesk wants 128×128"),
    (lambda d: (d / "assets/main.js").unlink(), "refers to main.js, which does not exist"),
    (lambda d: (d / "translations/en.json").unlink(), "translations/en.json is missing"),
    (lambda d: edit_json(d / "translations/en.json", lambda t: t["app"]["parameters"].pop("api_url")),
     "app.parameters.api_url.label is required"),
    (lambda d: edit_json(d / "manifest.json", lambda m: m["parameters"][1].pop("secure")),
     "shared_secret must be a secure parameter"),
    (lambda d: edit_json(d / "manifest.json", lambda m: m.update(frameworkVersion="1.0")), "frameworkVersion"),
    (lambda d: edit_json(d / "manifest.json", lambda m: m["location"]["support"].pop("ticket_sidebar")),
     "ticket_sidebar needs a url"),
    (lambda d: (d / "assets/main.js").write_text((d / "assets/main.js").read_text().replace("secure: true", "secure: false")),
     "without `secure: true`"),
])
def test_the_validator_names_what_zendesk_would_refuse(app_copy, breakage, problem):
    validate(app_copy, "https://bot.example.com")  # the copy is valid before it is broken
    breakage(app_copy)
    with pytest.raises(AppInvalid) as caught:
        validate(app_copy, "https://bot.example.com")
    assert any(problem in p for p in caught.value.problems), caught.value.problems


def test_the_product_address_must_be_https(tmp_path):
    result = CliRunner().invoke(main, ["zendesk-app", "package", "--url", "http://bot.example.com",
                                       "-o", str(tmp_path / "app.zip")])
    assert result.exit_code == 1 and "must use https" in result.output
    assert not (tmp_path / "app.zip").exists()
