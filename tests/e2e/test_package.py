"""`make install` and the Debian package (`make deb`, cpack): the .deb's
control data and contents are checked with dpkg-deb and lintian, its
copyright file against the libraries the build links in, then it is
extracted into a temp dir and the extracted binary is run: --version, a
script, and `run` serving a real request. Finally it is installed for real
with `dpkg -i` (as root; CI runs as root), used from /usr/bin, and purged.
TYCHO_DEB=path uses a .deb built beforehand; otherwise cpack builds one from
the build folder of $TYCHO."""
import fcntl
import fnmatch
import glob
import gzip
import http.client
import os
import re
import signal
import subprocess

import pytest

import tycho_server
from conftest import ROOT, TYCHO, release_only

# The .deb and `make install` take the release build folder of $TYCHO.
pytestmark = release_only("packages the release build")

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
    for lib in ("libc6", "libuv1", "libedit2", "zlib1g"):
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
    direct = {o for o in owners if o in ("libc6", "libuv1", "libedit2", "zlib1g")}
    assert direct == {"libc6", "libuv1", "libedit2", "zlib1g"}
    for name in direct:
        assert name in depends


def test_contents(deb):
    listing = sh("dpkg-deb", "-c", deb)
    paths = {line.split()[-1] for line in listing.splitlines()}
    assert "./usr/bin/tycho" in paths
    assert "./usr/share/doc/tycho/examples/hello/app.lua" in paths
    if os.path.exists(os.path.join(ROOT, "man", "tycho.1")):
        assert "./usr/share/man/man1/tycho.1.gz" in paths
    if os.path.isdir(os.path.join(ROOT, "lua", "types")):
        assert any(p.startswith("./usr/share/tycho/types/") for p in paths)
    assert "./usr/share/doc/tycho/copyright" in paths
    assert "./usr/share/doc/tycho/changelog.gz" in paths
    binary = next(line for line in listing.splitlines() if line.endswith("./usr/bin/tycho"))
    assert binary.startswith("-rwxr-xr-x")


def test_extracted_binary_runs(extracted, tmp_path):
    tycho = str(extracted / "usr/bin/tycho")
    assert sh(tycho, "--version").startswith("Tycho 0.1.0 (Lua 5.4")
    script = tmp_path / "s.lua"
    script.write_text("tycho.sleep(0.01)\nprint(tycho.json.encode({sum = 1 + 2}))\n")
    assert sh(tycho, str(script)) == '{"sum":3}\n'


def serve_hello(root, path, monkeypatch):
    """GET path from `ROOT/usr/bin/tycho run` on the packaged hello example;
    returns (status, body) once the server has exited cleanly."""
    monkeypatch.setattr(tycho_server, "TYCHO", os.path.join(root, "usr/bin/tycho"))
    app = os.path.join(root, "usr/share/doc/tycho/examples/hello/app.lua")
    with tycho_server.Server(app) as srv:
        c = http.client.HTTPConnection(srv.host, srv.port, timeout=20)
        c.request("GET", path)
        r = c.getresponse()
        answer = (r.status, r.read())
        c.close()
        srv.stop_checked()
    return answer


def test_extracted_binary_serves_an_example(extracted, monkeypatch):
    assert serve_hello(str(extracted), "/json", monkeypatch) == \
        (200, b'{"message":"Hello, World!"}')


def test_make_install_with_a_prefix(tmp_path):
    """`cmake --install` (what `make install` runs) honours --prefix and DESTDIR."""
    prefix = tmp_path / "opt"
    sh("cmake", "--install", BUILD, "--prefix", str(prefix))
    assert sh(str(prefix / "bin/tycho"), "-e", "print(1 + 1)") == "2\n"
    assert (prefix / "share/doc/tycho/examples/rest-api/app.lua").exists()
    if os.path.exists(os.path.join(ROOT, "man", "tycho.1")):
        assert (prefix / "share/man/man1/tycho.1.gz").exists()
    staged = tmp_path / "stage"
    sh("cmake", "--install", BUILD, "--prefix", "/usr/local",
       env=dict(os.environ, DESTDIR=str(staged)))
    assert os.access(staged / "usr/local/bin/tycho", os.X_OK)


def test_lintian_finds_no_error_or_warning(deb):
    out = subprocess.run(["lintian", "--tag-display-limit", "0", deb],
                         capture_output=True, text=True, timeout=300)
    tags = [line for line in out.stdout.splitlines() if re.match(r"[EW]: ", line)]
    assert tags == [], out.stdout + out.stderr
    assert out.returncode == 0, out.stdout + out.stderr


def test_binary_is_hardened(deb):
    """lintian's info tags: full RELRO with BIND_NOW, stack protector and
    fortified functions (Debian's default hardening)."""
    out = subprocess.run(["lintian", "-I", "--tag-display-limit", "0", deb],
                         capture_output=True, text=True, timeout=300)
    for tag in ("hardening-no-bindnow", "hardening-no-relro", "hardening-no-pie",
                "hardening-no-fortify-functions"):
        assert tag not in out.stdout, out.stdout


def test_changelog_is_compressed_and_names_the_version(extracted, deb):
    raw = (extracted / "usr/share/doc/tycho/changelog.gz").read_bytes()
    assert raw[:2] == b"\x1f\x8b"
    assert raw[3] & 0x08 == 0, "gzip header stores a file name (use gzip -n)"
    assert raw[4:8] == b"\0\0\0\0", "gzip header stores a time stamp (use gzip -n)"
    first = gzip.decompress(raw).decode().splitlines()[0]
    version = sh("dpkg-deb", "-f", deb, "Version").strip()
    assert first.startswith(f"tycho ({version}) "), first


def dep5(text):
    """The paragraphs of a DEP-5 file: lists of dicts, continuation lines
    joined with newlines ("." lines stand for empty ones)."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", text.strip("\n")):
        fields, name = {}, None
        for line in block.splitlines():
            if line[:1] in (" ", "\t"):
                assert name, f"continuation line before any field: {line!r}"
                rest = line.strip()
                fields[name] += "\n" + ("" if rest == "." else rest)
            else:
                name, value = line.split(":", 1)
                assert name not in fields, f"field {name} twice in a paragraph"
                fields[name] = value.strip()
        paragraphs.append(fields)
    return paragraphs


def words(text):
    return " ".join(text.split())


@pytest.fixture(scope="module")
def copyright(extracted):
    return dep5((extracted / "usr/share/doc/tycho/copyright").read_text())


def test_copyright_is_machine_readable(copyright):
    header, *rest = copyright
    assert header["Format"] == "https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
    files = [p for p in rest if "Files" in p]
    licenses = {p["License"].split("\n")[0]: p["License"] for p in rest if "Files" not in p}
    assert files and len(files) + len(licenses) == len(rest)
    for p in files:
        assert p["Copyright"] and p["License"], p
        name = p["License"].split("\n")[0]
        # a bare name refers to a stand-alone License paragraph with the text
        if "\n" not in p["License"]:
            assert name in licenses, f"no License paragraph for {name}"
            assert len(licenses[name].split("\n")) > 5, licenses[name]
    assert files[0]["Files"] == "*"  # Tycho's own sources
    assert "Tycho developers" in files[0]["Copyright"]


def test_copyright_quotes_our_license(copyright):
    mine = open(os.path.join(ROOT, "LICENSE")).read()
    assert "MIT License" in mine
    body = words(mine[mine.index("Permission is hereby granted"):])
    tycho = copyright[1]
    assert tycho["Files"] == "*"
    text = next(p["License"] for p in copyright
                if "Files" not in p and p.get("License", "").split("\n")[0] == tycho["License"])
    assert words(text.split("\n", 1)[1]) == body


def cache_value(name):
    with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
        for line in f:
            if line.startswith(name + ":"):
                return line.split("=", 1)[1].strip()
    raise AssertionError(f"{name} not in {BUILD}/CMakeCache.txt")


# What the build links in or compiles in: CMake cache entry (a file), a
# symbol of it the packaged binary exports, and the license and holder the
# copyright file must give it.
COMPONENTS = [
    ("LUA_STATIC", "", "lua_newstate", "Expat", "Lua.org, PUC-Rio"),
    ("LUV_STATIC", "", "luaopen_luv", "Apache-2.0", "The Luvit Authors"),
    ("CJSON_STATIC", "", "luaopen_cjson", "Expat", "Mark Pulford"),
    ("LLHTTP_DIR", "/llhttp.c", "llhttp_init", "Expat", "Fedor Indutny"),
]


@pytest.mark.parametrize("entry,suffix,symbol,license,holder", COMPONENTS,
                         ids=[c[0] for c in COMPONENTS])
def test_copyright_names_each_component_linked_in(copyright, extracted, entry, suffix,
                                                  symbol, license, holder):
    """Each component is really in the packaged binary (its symbol), the
    copyright paragraph whose Files match the file the build used (the last
    match wins, as in DEP-5) gives its holder and license, and that is the
    license Debian's own copyright file for that package gives too."""
    exported = sh("nm", "-D", "--defined-only", str(extracted / "usr/bin/tycho"))
    assert re.search(rf" T {symbol}$", exported, re.M), f"{symbol} not in the binary"
    path = os.path.realpath(cache_value(entry) + suffix)
    assert os.path.exists(path), path
    matches = [p for p in copyright if "Files" in p and any(
        fnmatch.fnmatchcase(path.lstrip("/"), pattern) for pattern in p["Files"].split())]
    assert matches, f"no Files paragraph matches {path}"
    paragraph = matches[-1]
    assert paragraph["Files"] != "*", f"{path} falls under Tycho's own paragraph"
    assert paragraph["License"] == license
    assert holder in paragraph["Copyright"]
    owner = sh("dpkg", "-S", path).split(":")[0]
    debian = open(f"/usr/share/doc/{owner}/copyright").read()
    assert holder in debian and f"License: {license}" in debian, owner


# --- installed with dpkg ---------------------------------------------------

LOCK = "/run/lock/tycho-package-test.lock"


def package_status():
    q = subprocess.run(["dpkg-query", "-W", "-f", "${db:Status-Status}", "tycho"],
                       capture_output=True, text=True)
    return q.stdout.strip() if q.returncode == 0 else "not-installed"


@pytest.fixture(scope="module")
def installed(deb):
    """dpkg -i the .deb; dpkg --purge it afterwards. Runs of this file by
    other checkouts on the same machine take turns (a lock file)."""
    if os.geteuid() != 0:
        pytest.fail("installing the .deb needs root: run this test as root (CI does)")
    lock = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o644)

    def expire(*_):
        raise TimeoutError(f"{LOCK} held for 10 minutes by another run of this test")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    try:
        status = package_status()
        if status != "not-installed":
            pytest.fail(f"a tycho package is already on this machine (dpkg status "
                        f"'{status}'): this test will not replace it; "
                        f"`dpkg --purge tycho` first if it is disposable")
        if os.path.lexists("/usr/bin/tycho"):
            pytest.fail("/usr/bin/tycho exists but belongs to no package (a make install "
                        "with PREFIX=/usr?): this test will not overwrite it")
        try:
            sh("dpkg", "-i", deb)
            yield
        finally:
            sh("dpkg", "--purge", "tycho")
            assert not os.path.lexists("/usr/bin/tycho")
            assert not os.path.lexists("/usr/share/doc/tycho")
            assert package_status() == "not-installed"
    finally:
        os.close(lock)


def test_dpkg_installs_every_file_intact(installed):
    assert package_status() == "installed"
    owned = sh("dpkg", "-L", "tycho").splitlines()
    for path in ("/usr/bin/tycho", "/usr/share/doc/tycho/copyright",
                 "/usr/share/doc/tycho/examples/hello/app.lua"):
        assert path in owned
        assert os.path.exists(path)
    # every file matches its md5sum from the package
    assert sh("dpkg", "--verify", "tycho") == ""


def test_installed_binary_runs_from_the_path(installed, tmp_path):
    env = dict(os.environ, PATH="/usr/bin:/bin")
    assert sh("tycho", "--version", env=env).startswith("Tycho 0.1.0 (Lua 5.4")
    script = tmp_path / "s.lua"
    script.write_text("tycho.sleep(0.01)\nprint(tycho.json.encode({argv = arg[1]}))\n")
    assert sh("tycho", str(script), "x", env=env) == '{"argv":"x"}\n'


def test_installed_binary_serves_the_installed_example(installed, monkeypatch):
    assert serve_hello("/", "/hello/dpkg", monkeypatch) == (200, b'{"hello":"dpkg"}')


def test_man_finds_the_installed_page(installed):
    if not os.path.exists(os.path.join(ROOT, "man", "tycho.1")):
        pytest.fail("man/tycho.1 missing from the tree: scripts/gen-man writes it")
    env = dict(os.environ, PATH="/usr/bin:/bin", MANWIDTH="80")
    env.pop("MANPATH", None)
    assert sh("man", "-w", "tycho", env=env).strip() == "/usr/share/man/man1/tycho.1.gz"
    page = sh("man", "-P", "cat", "tycho", env=env)
    assert "SYNOPSIS" in page and "tycho run" in page
