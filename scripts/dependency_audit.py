"""Audit the installed dependencies with pip-audit (PyPI's vulnerability data).

Exit 1 when a dependency has a known vulnerability. When the advisory data cannot be reached
(no network, or a package mirror that does not serve PyPI's JSON API), say so plainly and
exit 0: an audit that could not run must not pass for a clean one, nor block the build.
"""

from __future__ import annotations

import json
import subprocess
import sys

UNREACHABLE_SHARE = 0.5  # more packages than this unaudited: the advisory data was not reached


def main() -> int:
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pip_audit", "--format", "json", "--progress-spinner", "off", "--skip-editable"],
            capture_output=True, text=True, timeout=300,
        )
    except subprocess.TimeoutExpired:
        return unaudited("pip-audit did not finish within 300 s")
    try:
        report = json.loads(result.stdout)
    except ValueError:
        return unaudited(f"pip-audit failed: {(result.stderr or result.stdout).strip().splitlines()[-1:]}")
    dependencies = report.get("dependencies", [])
    skipped = [d for d in dependencies if d.get("skip_reason")]
    vulnerable = [d for d in dependencies if d.get("vulns")]
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixed = ", ".join(vuln.get("fix_versions") or []) or "no fix yet"
            print(f"VULNERABLE {dep['name']} {dep['version']}: {vuln['id']} (fixed in {fixed})")
    if vulnerable:
        print(f"dependency audit: {len(vulnerable)} vulnerable package(s) of {len(dependencies)}")
        return 1
    if dependencies and len(skipped) / len(dependencies) > UNREACHABLE_SHARE:
        return unaudited(f"{len(skipped)} of {len(dependencies)} packages could not be looked up "
                         f"({skipped[0]['skip_reason']})")
    audited = len(dependencies) - len(skipped)
    print(f"dependency audit: no known vulnerabilities in {audited} audited packages"
          + (f"; {len(skipped)} skipped: {', '.join(d['name'] for d in skipped)}" if skipped else ""))
    return 0


def unaudited(why: str) -> int:
    print("=" * 78)
    print("DEPENDENCY AUDIT NOT RUN: PyPI's vulnerability data could not be reached.")
    print(f"  {why}")
    print("  Nothing was audited. Run `make audit` where pypi.org is reachable.")
    print("=" * 78)
    return 0


if __name__ == "__main__":
    sys.exit(main())
