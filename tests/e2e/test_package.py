"""`make install` and the Debian package (`make deb`, cpack): the .deb's
control data and contents are checked with dpkg-deb, then it is extracted
into a temp dir and the extracted binary is run: --version, a script, and
`run` serving a real request. TYCHO_DEB=path uses a .deb built beforehand;
otherwise cpack builds one from the build folder of $TYCHO."""
import glob
import http.client
import os
import subprocess

import pytest

import tycho_server
from conftest import ROOT, TYCHO

BUILD = os.path.dirname(os.path.abspath(TYCHO))


def sh(*args, **kw):
    out = subprocess.run(args, capture_output=True, text=True, timeout=300, **kw)
    assert out.returncode == 0, f"{args}: {out.stdout}{out.stderr}"
    return out.stdout


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    if os.environ.get("TYCHO_DEB"):
        return os.environ["TYCHO_DEB"]
    config = os.path.join(BUILD, "CPackConfig.cmake")
    assert os.path.exists(config), f"{config} missing: re-run cmake on {BUILD}"
    out = tmp_path_factory.mktemp("deb")
    sh("cpack", "-G", "DEB", "--config", config, "-B", str(out), cwd=BUILD)
    debs = glob.glob(str(out / "tycho_*.deb"))
    assert len(debs) == 1, debs
    return debs[0]


@pytest.fixture(scope="module")
def extracted(deb, tmp_path_factory):
    root = tmp_path_factory.mktemp("root")
    sh("dpkg-deb", "-x", deb, str(root))
    return root


def test_control_fields(deb):
    info = sh("dpkg-deb", "-I", deb)
    assert " Package: tycho\n" in info
    assert "Lua 5.4 on libuv" in info
    fields = dict(line.split(": ", 1) for line in sh(
        "dpkg-deb", "-f", deb, "Package", "Version", "Architecture", "Depends").splitlines())
    assert fields["Package"] == "tycho"
    assert fields["Version"] == "0.1.0"
    assert fields["Architecture"] == "amd64"
    depends = fields["Depends"]
    for lib in ("libc6", "libuv1", "libedit2"):
        assert lib in depends
    # Lua, luv and cjson are linked in statically: no dependency on them.
    assert "lua" not in depends


def test_every_shared_library_is_a_declared_dependency(extracted, deb):
    """Each library ldd reports for the packaged binary comes from a package
    the .deb depends on."""
    depends = sh("dpkg-deb", "-f", deb, "Depends")
    ldd = sh("ldd", str(extracted / "usr/bin/tycho"))
    libs = [line.split()[0] for line in ldd.splitlines() if "=>" in line]
    assert libs, ldd
    owners = set()
    for lib in libs:
        path = next(line.split("=>")[1].split()[0] for line in ldd.splitlines()
                    if line.split()[0] == lib)
        real = os.path.realpath(path)
        q = subprocess.run(["dpkg", "-S", real], capture_output=True, text=True)
        if q.returncode != 0:  # merged /usr: dpkg knows the /lib path
            q = subprocess.run(["dpkg", "-S", real.replace("/usr/lib/", "/lib/", 1)],
                               capture_output=True, text=True)
        assert q.returncode == 0, q.stderr
        owners.add(q.stdout.split(":")[0])
    # libtinfo, libbsd, libmd come in through libedit2 (its own dependencies).
    direct = {o for o in owners if o in ("libc6", "libuv1", "libedit2")}
    assert direct == {"libc6", "libuv1", "libedit2"}
    for name in direct:
        assert name in depends


def test_contents(deb):
    listing = sh("dpkg-deb", "-c", deb)
    paths = {line.split()[-1] for line in listing.splitlines()}
    assert "./usr/bin/tycho" in paths
    assert "./usr/share/doc/tycho/examples/hello/app.lua" in paths
    if os.path.exists(os.path.join(ROOT, "man", "tycho.1")):
        assert "./usr/share/man/man1/tycho.1" in paths
    if os.path.isdir(os.path.join(ROOT, "lua", "types")):
        assert any(p.startswith("./usr/share/tycho/types/") for p in paths)
    binary = next(line for line in listing.splitlines() if line.endswith("./usr/bin/tycho"))
    assert binary.startswith("-rwxr-xr-x")


def test_extracted_binary_runs(extracted, tmp_path):
    tycho = str(extracted / "usr/bin/tycho")
    assert sh(tycho, "--version").startswith("Tycho 0.1.0 (Lua 5.4")
    script = tmp_path / "s.lua"
    script.write_text("tycho.sleep(0.01)\nprint(tycho.json.encode({sum = 1 + 2}))\n")
    assert sh(tycho, str(script)) == '{"sum":3}\n'


def test_extracted_binary_serves_an_example(extracted, monkeypatch):
    monkeypatch.setattr(tycho_server, "TYCHO", str(extracted / "usr/bin/tycho"))
    app = extracted / "usr/share/doc/tycho/examples/hello/app.lua"
    with tycho_server.Server(app) as srv:
        c = http.client.HTTPConnection(srv.host, srv.port, timeout=20)
        c.request("GET", "/json")
        r = c.getresponse()
        assert (r.status, r.read()) == (200, b'{"message":"Hello, World!"}')
        c.close()


def test_make_install_with_a_prefix(tmp_path):
    """`cmake --install` (what `make install` runs) honours --prefix and DESTDIR."""
    prefix = tmp_path / "opt"
    sh("cmake", "--install", BUILD, "--prefix", str(prefix))
    assert sh(str(prefix / "bin/tycho"), "-e", "print(1 + 1)") == "2\n"
    assert (prefix / "share/doc/tycho/examples/rest-api/app.lua").exists()
    if os.path.exists(os.path.join(ROOT, "man", "tycho.1")):
        assert (prefix / "share/man/man1/tycho.1").exists()
    staged = tmp_path / "stage"
    sh("cmake", "--install", BUILD, "--prefix", "/usr/local",
       env=dict(os.environ, DESTDIR=str(staged)))
    assert os.access(staged / "usr/local/bin/tycho", os.X_OK)
