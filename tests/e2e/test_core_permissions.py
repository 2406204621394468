"""Permission denied as a real unprivileged user: the tests run as root, so
the script runs as `nobody` through setpriv(1), against files root owns."""
import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import TYCHO

SCRIPT = r"""
local fs = tycho.fs
local dir = arg[1]
local function show(what, ok, err, code)
  print(what, ok and "ok" or code, err and err:match("^[^:]+: [^:]+") or "")
end
show("read_file", fs.read_file(dir .. "/secret"))
show("open", fs.open(dir .. "/secret", "r"))
show("write_file", fs.write_file(dir .. "/new", "x"))
show("atomic", fs.write_file(dir .. "/public", "x", { atomic = true }))
show("mkdir", fs.mkdir(dir .. "/sub"))
show("unlink", fs.unlink(dir .. "/public"))
show("readdir", fs.readdir(dir .. "/locked"))
show("stat", fs.stat(dir .. "/locked/inner"))
print("public", fs.read_file(dir .. "/public"))
"""


@pytest.fixture
def root_dir():
    # A directory root owns, readable by all: pytest's tmp_path is 0700.
    d = tempfile.mkdtemp(prefix="tycho-perm-")
    os.chmod(d, 0o755)
    with open(os.path.join(d, "secret"), "w") as f:
        f.write("root only")
    os.chmod(os.path.join(d, "secret"), 0o600)
    with open(os.path.join(d, "public"), "w") as f:
        f.write("everyone")
    os.chmod(os.path.join(d, "public"), 0o644)
    os.mkdir(os.path.join(d, "locked"), 0o700)
    open(os.path.join(d, "locked", "inner"), "w").close()
    with open(os.path.join(d, "script.lua"), "w") as f:
        f.write(SCRIPT)
    os.chmod(os.path.join(d, "script.lua"), 0o644)
    yield d
    shutil.rmtree(d)


def test_unprivileged_user_gets_eacces_as_nil_message_code(root_dir):
    r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                        TYCHO, os.path.join(root_dir, "script.lua"), root_dir],
                       capture_output=True, text=True, timeout=30, cwd="/")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert r.stdout.splitlines() == [
        "read_file\tEACCES\tEACCES: permission denied",
        "open\tEACCES\tEACCES: permission denied",
        "write_file\tEACCES\tEACCES: permission denied",
        "atomic\tEACCES\tEACCES: permission denied",
        "mkdir\tEACCES\tEACCES: permission denied",
        "unlink\tEACCES\tEACCES: permission denied",
        "readdir\tEACCES\tEACCES: permission denied",
        "stat\tEACCES\tEACCES: permission denied",
        "public\teveryone",
    ]
    assert sorted(os.listdir(root_dir)) == ["locked", "public", "script.lua", "secret"]
