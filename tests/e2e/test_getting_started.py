"""docs/getting-started.md, followed as a new user would: its files are
written from the page's code blocks, its shell commands run verbatim (in a
temporary directory, with the built tycho first on PATH and the port the
server picked), and their output is checked against the `# ...` comments
the page shows. If the guide and the code drift apart, this fails."""
import json
import os
import re
import signal
import subprocess

import pytest

from conftest import ROOT, TYCHO
from test_reload import App

GUIDE = os.path.join(ROOT, "docs", "getting-started.md")
DEADLINE = 10


def blocks():
    """The guide's fenced code blocks as (language, text)."""
    with open(GUIDE) as f:
        text = f.read()
    return re.findall(r"^```(\w*)\n(.*?)^```", text, re.S | re.M)


def lua_file(first_line):
    """The Lua block whose first line is `-- NAME...`."""
    for lang, body in blocks():
        if lang == "lua" and body.startswith("-- " + first_line):
            return body
    raise AssertionError("no lua block starting with -- " + first_line)


def commands(prefix):
    """Every shell line of the guide that starts with prefix, split into the
    command and the expected-output comment after `  # `."""
    out = []
    for lang, body in blocks():
        if lang != "sh":
            continue
        for line in body.splitlines():
            if line.startswith(prefix):
                cmd, _, comment = line.partition("  #")
                out.append((cmd.strip(), comment.strip()))
    assert out, "no command starting with " + prefix
    return out


def sh(cmd, cwd, port=None, sock=None, input=None):
    if port is not None:
        cmd = cmd.replace("127.0.0.1:8080", "127.0.0.1:%d" % port)
    if sock is not None:
        cmd = cmd.replace("/tmp/notes.sock", sock)
    env = dict(os.environ, PATH=os.path.dirname(TYCHO) + os.pathsep + os.environ["PATH"])
    return subprocess.run(["bash", "-c", cmd], cwd=cwd, env=env, input=input,
                          capture_output=True, text=True, timeout=DEADLINE)


def check_curl(cmd, comment, r):
    """Checks curl's output against the guide's comment: `{...}` is the JSON
    body, a leading number the status (with curl -i)."""
    assert r.returncode == 0, (cmd, r.stderr)
    out = r.stdout
    m = re.match(r"^(\d{3})\b[ ,]*(.*)$", comment)
    if m:
        assert "-i" in cmd.split(), "a status in the comment needs curl -i: " + cmd
        head, _, out = out.partition("\n\n")  # text mode turned CRLF into LF
        assert head.startswith("HTTP/1.1 " + m.group(1)), (cmd, head)
        comment = m.group(2)
        allow = re.match(r"^Allow: (.*)$", comment)
        if allow:
            assert "\nallow: " + allow.group(1).lower() in head.lower(), (cmd, head)
            return
    if comment.startswith("{"):
        # JSON objects compare as values (key order is not fixed); in one
        # with "..." values only the keys must match.
        try:
            got = json.loads(out)
        except ValueError:
            raise AssertionError("not JSON: %r (%s)" % (out, cmd))
        if '"..."' in comment:
            assert sorted(got) == sorted(json.loads(comment)), (cmd, out)
        else:
            assert got == json.loads(comment), (cmd, out)


@pytest.fixture
def apps():
    started = []
    yield started
    for app in started:
        app.stop()
        bad = [l for l in app.lines if "Sanitizer" in l or "runtime error:" in l]
        assert bad == [], "\n".join(app.lines)


def test_version_and_one_liner(tmp_path):
    (cmd, _), = commands("tycho -v")
    r = sh(cmd, tmp_path)
    assert r.returncode == 0 and re.match(r"^Tycho \S+ \(Lua 5\.4", r.stdout), r
    (cmd, comment), = commands("tycho -e")
    r = sh(cmd, tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == comment, r


def test_hello_answers_curl(tmp_path, apps):
    # App runs `tycho run app.lua --port 0`: the guide's hello.lua under that name.
    assert commands("tycho run hello.lua")[0][0] == "tycho run hello.lua"
    (tmp_path / "app.lua").write_text(lua_file("hello.lua"))
    app = App(str(tmp_path))
    apps.append(app)
    (cmd, comment), = commands("curl http://127.0.0.1:8080/world")
    r = sh(cmd, tmp_path, port=app.port)
    assert r.returncode == 0 and r.stdout.strip() == comment, r
    app.proc.send_signal(signal.SIGINT)  # "Ctrl-C stops the server gracefully"
    assert app.proc.wait(timeout=DEADLINE) == 0


def test_json_api_hot_reload_repl_and_tests(tmp_path, apps):
    (tmp_path / "app.lua").write_text(lua_file("app.lua"))
    sock = str(tmp_path / "notes.sock")
    run_line = commands("tycho run app.lua --watch --repl")[0][0]
    assert run_line == "tycho run app.lua --watch --repl /tmp/notes.sock"
    app = App(str(tmp_path), "--watch", "--repl", sock)
    apps.append(app)

    # Section 3: every curl line, in order, against the live server.
    delete = [c for c in commands("curl") if "-X DELETE" in c[0]]
    for cmd, comment in commands("curl -s"):
        if "-X DELETE" not in cmd:
            check_curl(cmd, comment, sh(cmd, tmp_path, port=app.port))

    # Section 4: the added route goes in above `return app`; one reload.
    path = tmp_path / "app.lua"
    code = path.read_text()
    patch = lua_file("add to app.lua")
    assert code.count("\nreturn app\n") == 1
    path.write_text(code.replace("\nreturn app\n", "\n" + patch + "\nreturn app\n"))
    app.wait_reloaded()
    (cmd, comment), = delete
    check_curl(cmd, comment, sh(cmd, tmp_path, port=app.port))

    # Section 5: the piped attach line reads the state of the live process.
    (cmd, _), = commands("echo 'return tycho.state")
    r = sh(cmd, tmp_path, sock=sock)
    assert r.returncode == 0 and r.stdout.strip() == "2", r

    # Section 6: the spec file passes against the same app.lua.
    spec = tmp_path / "spec"
    spec.mkdir()
    (spec / "notes_spec.lua").write_text(lua_file("spec/notes_spec.lua"))
    (cmd, comment), (cmd_tap, _) = commands("tycho test")
    r = sh(cmd, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert comment.split('"')[1] in r.stdout, r.stdout
    r = sh(cmd_tap, tmp_path)
    assert r.returncode == 0 and "\nok 3 " in r.stdout and "not ok" not in r.stdout, r.stdout


def test_repl_session_as_shown(tmp_path):
    """The `tycho repl` transcript, fed through a pipe."""
    transcript = [body for lang, body in blocks() if body.startswith("$ tycho repl\n")]
    assert len(transcript) == 1
    lines = transcript[0].splitlines()[1:]
    inputs = [l[2:] for l in lines if l.startswith("> ")]
    expected = [l for l in lines if not l.startswith("> ")]
    r = sh("tycho repl", tmp_path, input="\n".join(inputs) + "\n")
    assert r.returncode == 0, r
    assert r.stdout.split("\n")[:len(expected)] == expected, r.stdout
