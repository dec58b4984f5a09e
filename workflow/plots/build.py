"""Build workflow/plots/offline.html: DVC's plots page template with vega, vega-lite and
vega-embed inlined, so `dvc plots show` and `dvc plots diff` pages render with no network.

DVC's own page loads these three scripts from a CDN (dvc_render/vega.py); this template has no
`{scripts}` placeholder, so DVC adds none, and carries the same pinned versions itself, taken
from their npm packages and checked against the sha256 of each tarball.
Run: python workflow/plots/build.py (needs npm); .dvc/config points `plots.html_template` here.
"""

import hashlib
import subprocess
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
# package@version (the ones dvc_render's page names), its npm tarball's sha256, the script inside
PACKAGES = [
    ("vega@5.20.2", "d77deab01d6104b1239228720721f93003e60797d2faced7ffdd759fa70f989d", "package/build/vega.min.js"),
    ("vega-lite@5.2.0", "f64ca4745f043447ac86b67dc9e9592ec2b85ac8b8dafc35faf970f142463e4b",
     "package/build/vega-lite.min.js"),
    ("vega-embed@6.18.2", "93aeee312e92077b0252ef026c0fe0ec8fa430c19825aeada6cd3a6804e68e1b",
     "package/build/vega-embed.min.js"),
]
PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC Plot</title>
%s
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def script(spec: str, sha256: str, member: str, folder: Path) -> str:
    name = subprocess.run(["npm", "pack", spec, "--silent"], cwd=folder, check=True, capture_output=True,
                          text=True).stdout.strip().splitlines()[-1]
    data = (folder / name).read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise SystemExit(f"{spec}: the npm tarball's sha256 is not the pinned one")
    with tarfile.open(folder / name) as tar:
        code = tar.extractfile(member).read().decode("utf-8")
    code = code.replace("</script", "<\\/script")  # the page's parser must not end the element early
    return f"    <!-- {spec} ({member}, npm tarball sha256 {sha256}) -->\n    <script>{code}</script>"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        scripts = "\n".join(script(*package, Path(tmp)) for package in PACKAGES)
    (HERE / "offline.html").write_text(PAGE.replace("%s", scripts, 1), encoding="utf-8")
    print(f"wrote {HERE / 'offline.html'}")


if __name__ == "__main__":
    main()
