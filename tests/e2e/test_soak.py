"""A short soak under valgrind memcheck (bench/soak.py --valgrind): keep-alive
requests mixed with handler errors, large bodies both ways, streamed
responses and clients dropping mid-request. Valgrind must report no errors
and no definite or indirect leaks, and the server must survive it."""
import os
import subprocess

from conftest import ROOT, TYCHO, release_only


@release_only("valgrind cannot run an ASan-instrumented binary")
def test_short_soak_under_valgrind_is_clean(tmp_path):
    log = tmp_path / "valgrind.log"
    r = subprocess.run(
        ["/usr/bin/python3", os.path.join(ROOT, "bench", "soak.py"), "--valgrind",
         "--requests", "3000", "--first", "1000", "--tycho", TYCHO, "--log", str(log)],
        capture_output=True, text=True, timeout=600)
    text = log.read_text()
    assert "ERROR SUMMARY: 0 errors" in text, text[-3000:]
    assert "definitely lost: 0 bytes" in text or "All heap blocks were freed" in text
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert '"requests": 3000' in r.stdout
