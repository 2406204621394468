"""Loading Lua code: Debian's Lua modules from the system paths (pure Lua
and C), the embedded library, and TYCHO_LUA_DEV for hacking on it."""
import os
import shutil

from conftest import ROOT


def test_require_penlight_pure_lua(tycho):
    r = tycho("-e", "local path = require 'pl.path' print(path.join('a', 'b'))"
                    " print(require('pl.stringx').split('x,y', ',')[2])")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "a/b\ny\n"


def test_require_lfs_c_module(tycho, tmp_path):
    r = tycho("-e", "local lfs = require 'lfs' print(lfs.attributes(arg[1] or '.', 'mode'))"
                    " print(lfs.currentdir())", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"directory\n{tmp_path}\n"


def test_cjson_is_preloaded(tycho):
    r = tycho("-e", "print(package.preload.cjson ~= nil, require('cjson').encode({1}))")
    assert r.returncode == 0 and r.stdout == "true\t[1]\n"


def test_the_library_is_embedded(tycho, tmp_path):
    # From an empty directory with no Lua path to the sources, tycho.fs
    # still loads: it comes from the binary.
    env = {k: v for k, v in os.environ.items() if k != "TYCHO_LUA_DEV"}
    r = tycho("-e", "print(package.searchpath('tycho.fs', package.path),"
                    " type(tycho.fs.read_file))", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "nil\tfunction\n"


def test_tycho_lua_dev_loads_the_library_from_a_directory(tycho, tmp_path):
    lua = tmp_path / "lua"
    shutil.copytree(os.path.join(ROOT, "lua"), lua)
    init = lua / "tycho" / "init.lua"
    init.write_text(init.read_text().replace(
        "local M = {}\n", "local M = {}\nM.from_dev_tree = true\n", 1))
    (lua / "tycho" / "devonly.lua").write_text("return { answer = 42 }\n")
    env = {**os.environ, "TYCHO_LUA_DEV": str(lua)}
    code = "print(tycho.from_dev_tree, tycho.devonly and tycho.devonly.answer)"
    r = tycho("-e", code, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "true\t42\n"
    plain = {k: v for k, v in os.environ.items() if k != "TYCHO_LUA_DEV"}
    r = tycho("-e", code, env=plain)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "nil\tnil\n"
