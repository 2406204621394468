"""Generated docs stay generated: man/tycho.1 is what scripts/gen-man makes
of the binary's `--help`, lua/types/tycho.lua what scripts/gen-types makes
of docs/api.md, and every page the README's index links exists."""
import os
import re
import subprocess

from conftest import ROOT, TYCHO

MAN = os.path.join(ROOT, "man", "tycho.1")


def script(name, *args):
    return subprocess.run([os.path.join(ROOT, "scripts", name), *args],
                          capture_output=True, text=True, timeout=60, check=True).stdout


def test_man_page_is_up_to_date_with_help():
    with open(MAN) as f:
        committed = f.read()
    assert script("gen-man", TYCHO, "-") == committed, \
        "man/tycho.1 is stale: run scripts/gen-man build/tycho"


def test_man_page_renders_without_warnings_and_has_every_option():
    r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", MAN],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    page = subprocess.run(["man", "-l", MAN], capture_output=True, text=True,
                          timeout=30, env=dict(os.environ, MANWIDTH="200", MAN_KEEP_FORMATTING="")).stdout
    page = re.sub(r".\x08", "", page)  # drop overstrike bold/underline
    help_text = subprocess.run([TYCHO, "--help"], capture_output=True, text=True,
                               timeout=30).stdout
    options = set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", help_text))
    assert {"-e", "-h", "--help", "--port", "--watch"} <= options
    missing = sorted(o for o in options if o not in page)
    assert missing == [], missing
    for command in ("run APP.lua", "test [PATH...]", "repl", "attach PATH"):
        assert command in page


def test_lua_types_are_generated_from_api_md():
    with open(os.path.join(ROOT, "lua", "types", "tycho.lua")) as f:
        committed = f.read()
    api = os.path.join(ROOT, "docs", "api.md")
    assert script("gen-types", api, "-") == committed, \
        "lua/types/tycho.lua is stale: run scripts/gen-types"


def test_readme_links_every_docs_page():
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    linked = set(re.findall(r"\]\((docs/[\w.-]+\.md)\)", readme))
    pages = {"docs/" + n for n in os.listdir(os.path.join(ROOT, "docs")) if n.endswith(".md")}
    assert sorted(pages - linked) == [], "pages missing from the README's index"
    assert sorted(linked - pages) == [], "README links pages that do not exist"
