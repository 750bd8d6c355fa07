"""The build sandbox with the real bwrap: a Makefile in a throwaway "clone" writes where the
build may and nowhere else, reaches no network, and its build error quotes the refused
write; the command line itself is pure data. Seconds; skipped where bwrap is missing or
cannot make a sandbox."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from kheaders_suite.build import kernel, sandbox
from kheaders_suite.build.make import Runner
from kheaders_suite.catalog import arches, variants
from kheaders_suite.errors import BuildFailed, InfraError, UserError
from kheaders_suite.source.tree import KernelSource, KernelVersion


def _usable() -> str:
    """Why the real sandbox cannot run here, "" when it can."""
    found = shutil.which(sandbox.BWRAP)
    if found is None:
        return "bwrap not installed"
    try:
        sandbox.probe(found)
    except InfraError as exc:
        return str(exc)
    return ""


WHY_NOT = _usable()
real = pytest.mark.skipif(bool(WHY_NOT), reason=WHY_NOT)

# Each target one thing a series' Makefile may try; $(OUT) is a path outside the clone.
MAKEFILE = """\
inside:
\techo built > $(OBJ)/built.o
\techo scratch > $(SCRATCH) && cat $(SCRATCH)
outside:
\techo escaped > $(OUT)
connect:
\tpython3 -c 'import socket; socket.create_connection(("127.0.0.1", $(PORT)), timeout=5)'
links:
\tcat /proc/net/dev
read:
\tcat $(INPUT)
env:
\tenv
"""


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    src = tmp_path / "clone"
    src.mkdir()
    (src / "Makefile").write_text(MAKEFILE)
    return src


def runner(tmp_path: Path, clone: Path, bwrap: str | None,
           readable: tuple[Path, ...] = ()) -> Runner:
    """The build's own runner, as build/kernel.py makes it: writable the clone, the object
    tree and a ccache directory; ``readable``: the cache directory."""
    return Runner(tmp_path / "build.log", {"CCACHE_DIR": str(tmp_path / "ccache")},
                  lambda line: None, "x86_64-sysfs", 60.0,
                  places=(clone, tmp_path / "obj"), bwrap=bwrap,
                  writable=(tmp_path / "ccache",), readable=readable)


def make(clone: Path, target: str, **variables: str) -> tuple[str, ...]:
    return ("make", "-C", str(clone), f"OBJ={clone.parent / 'obj'}",
            *(f"{k}={v}" for k, v in variables.items()), target)


def log_text(tmp_path: Path) -> str:
    return (tmp_path / "build.log").read_text()


@real
def test_writes_in_the_clone_and_object_tree_work(tmp_path: Path, clone: Path) -> None:
    scratch = Path(f"/tmp/kheaders-sandbox-scratch-{os.getpid()}")
    runner(tmp_path, clone, sandbox.find_bwrap()).run(make(clone, "inside",
                                                           SCRATCH=str(scratch)))
    assert (tmp_path / "obj/built.o").read_text() == "built\n"
    assert "\nscratch\n" in log_text(tmp_path)  # /tmp is writable, and private:
    assert not scratch.exists()


@real
@pytest.mark.parametrize("where", ["host-tmp", "etc", "home"])
def test_a_write_outside_fails_and_the_error_quotes_it(tmp_path: Path, clone: Path,
                                                       where: str) -> None:
    # Not /tmp: the sandbox's /tmp is its own tmpfs, where a write works and stays inside.
    name = f"kheaders-sandbox-test-{os.getpid()}"
    out = {"host-tmp": Path("/var/tmp") / name, "etc": Path("/etc") / name,
           "home": Path(pwd.getpwuid(os.getuid()).pw_dir) / name}[where]
    with pytest.raises(BuildFailed) as raised:
        runner(tmp_path, clone, sandbox.find_bwrap()).run(make(clone, "outside", OUT=str(out)))
    first = str(raised.value).splitlines()[0]
    assert first.startswith("x86_64-sysfs: start: the build sandbox refused a write"), first
    assert f"{out}: {sandbox.REFUSED}" in first, first
    assert not out.exists()


@real
def test_a_cache_under_tmp_is_read_inside_and_still_read_only(tmp_path: Path,
                                                               clone: Path) -> None:
    """The sandbox's /tmp is a tmpfs of its own: a cache directory (and the fragments
    configure reads from it) under the host's /tmp is bound back over it, read-only."""
    assert str(tmp_path).startswith("/tmp/"), tmp_path
    (tmp_path / "input").write_text("fragment\n")
    bwrap = sandbox.find_bwrap()
    with pytest.raises(BuildFailed):  # hidden by the sandbox's /tmp when not bound back
        runner(tmp_path, clone, bwrap).run(make(clone, "read", INPUT=str(tmp_path / "input")))
    runner(tmp_path, clone, bwrap, (tmp_path,)).run(make(clone, "read",
                                                         INPUT=str(tmp_path / "input")))
    assert "\nfragment\n" in log_text(tmp_path)
    with pytest.raises(BuildFailed, match="refused a write"):
        runner(tmp_path, clone, bwrap, (tmp_path,)).run(
            make(clone, "outside", OUT=str(tmp_path / "input")))
    assert (tmp_path / "input").read_text() == "fragment\n"


@real
def test_the_sandboxs_ccache_is_seeded_with_a_copy_and_no_link_leads_out(
        tmp_path: Path, clone: Path) -> None:
    """A cold sandboxed build starts from the unconfined builds' ccache, copied inside the
    sandbox: a symlink a series left in its own ccache cannot carry the copy out of it."""
    trusted, victim = tmp_path / "trusted", tmp_path / "victim"
    (trusted / "0/0").mkdir(parents=True)
    (trusted / "0/0/entryR").write_bytes(b"object")
    (trusted / "1/2").mkdir(parents=True)
    (trusted / "1/2/otherR").write_bytes(b"other")
    (tmp_path / "ccache/1/2").mkdir(parents=True)
    victim.mkdir()
    (victim / "file").write_bytes(b"host")
    os.utime(victim / "file", (0, 0))  # older than the entry: cp -u writes through the link
    (tmp_path / "ccache/1/2/otherR").symlink_to(victim / "file")
    build = runner(tmp_path, clone, sandbox.find_bwrap(), (tmp_path,))
    kernel._seed_sandbox_ccache(build, trusted)
    assert (tmp_path / "ccache/0/0/entryR").read_bytes() == b"object"
    assert not (tmp_path / "ccache/0/0/entryR").samefile(trusted / "0/0/entryR")
    assert (victim / "file").read_bytes() == b"host"
    assert "ccache seed incomplete" in log_text(tmp_path)
    assert sorted(p.name for p in trusted.rglob("*R")) == ["entryR", "otherR"]


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        sock.settimeout(0.5)
        yield sock


def test_the_hosts_listener_is_reachable_without_the_sandbox(
        tmp_path: Path, clone: Path, listener: socket.socket) -> None:
    """What the next test takes away: the same Makefile, unconfined, connects."""
    port = str(listener.getsockname()[1])
    runner(tmp_path, clone, None).run(make(clone, "connect", PORT=port))
    listener.accept()[0].close()


@real
def test_no_network_the_hosts_listener_is_out_of_reach(tmp_path: Path, clone: Path,
                                                       listener: socket.socket) -> None:
    port = str(listener.getsockname()[1])
    with pytest.raises(BuildFailed):
        runner(tmp_path, clone, sandbox.find_bwrap()).run(make(clone, "connect", PORT=port))
    assert "ConnectionRefusedError" in log_text(tmp_path)
    with pytest.raises(TimeoutError):
        listener.accept()


def interfaces(proc_net_dev: str) -> set[str]:
    """The interface names of /proc/net/dev's lines ("  lo: 1234 ..."), among others."""
    return set(re.findall(r"^\s*([\w.@-]+):\s+\d", proc_net_dev, re.M))


@real
def test_the_sandboxs_network_namespace_holds_only_lo(tmp_path: Path, clone: Path) -> None:
    runner(tmp_path, clone, sandbox.find_bwrap()).run(make(clone, "links"))
    inside = interfaces(log_text(tmp_path).split("cat /proc/net/dev", 1)[1])
    assert inside == {"lo"}
    assert interfaces(Path("/proc/net/dev").read_text()) != {"lo"}, \
        "this host has only lo itself: the check above shows nothing here"


def test_the_command_line(tmp_path: Path) -> None:
    src, obj = tmp_path / "src", tmp_path / "obj"
    got = sandbox.bwrap_command("/usr/bin/bwrap", (src, obj, src), ("make", "-C", str(src)))
    assert got == ("/usr/bin/bwrap", "--unshare-all", "--die-with-parent", "--new-session",
                   "--cap-drop", "ALL", "--ro-bind", "/", "/", "--dev", "/dev",
                   "--proc", "/proc", "--tmpfs", "/tmp", "--setenv", "TMPDIR", "/tmp",
                   "--bind", str(src), str(src), "--bind", str(obj), str(obj),
                   "--", "make", "-C", str(src))
    cache = tmp_path / "cache"
    got = sandbox.bwrap_command("bwrap", (src,), ("true",), (cache, cache))
    assert got[-7:] == ("--ro-bind", str(cache), str(cache), "--bind", str(src), str(src),
                        "--", "true")[-7:]
    assert got.count("--ro-bind") == 2  # / and the cache, once


def test_runner_binds_its_places_ccache_and_the_commands_own(tmp_path: Path,
                                                             clone: Path) -> None:
    cmd = runner(tmp_path, clone, "bwrap").sandboxed(("make",), (tmp_path / "modroot",))
    binds = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--bind"]
    assert binds == [str(clone), str(tmp_path / "obj"), str(tmp_path / "ccache"),
                     str(tmp_path / "modroot")]
    assert (tmp_path / "modroot").is_dir()  # a bind's source must exist
    assert runner(tmp_path, clone, None).sandboxed(("make",), ()) == ("make",)


def test_refused_write_is_the_first_erofs_line() -> None:
    said = ("  CC      kernel/fork.o\n"
            "/bin/sh: 1: cannot create /etc/x: Read-only file system\n"
            "make[2]: *** [Makefile:3: all] Error 2\n"
            "touch: cannot touch '/root/y': Read-only file system\n")
    assert sandbox.refused_write(said) == "/bin/sh: 1: cannot create /etc/x: Read-only file system"
    assert sandbox.refused_write("make: *** [all] Error 1\n") == ""


def test_wanted_only_when_kheaders_ci_says_1() -> None:
    assert sandbox.wanted({sandbox.SANDBOX_VARIABLE: "1"})
    assert not sandbox.wanted({sandbox.SANDBOX_VARIABLE: "0"})
    assert not sandbox.wanted({})


def test_missing_bwrap_names_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError) as raised:
        sandbox.find_bwrap()
    assert str(raised.value) == "bwrap not found: apt-get install bubblewrap, or --no-sandbox"


def test_a_host_that_cannot_make_a_sandbox_is_an_infra_error(tmp_path: Path) -> None:
    """bwrap's own complaint, as in a container under docker's default seccomp profile."""
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: Creating new namespace failed: "
                    "Operation not permitted' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(InfraError, match=r"cannot run here: bwrap: Creating new namespace "
                                         r"failed: Operation not permitted; .*--no-sandbox"):
        sandbox.probe(str(fake))


def test_sandboxed_builds_keep_to_a_workspace_and_ccache_of_their_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a series' make wrote (host programs in the object tree, a ccache.conf whose
    compiler_check is a command) is never run by a build outside the sandbox."""
    source = KernelSource(tmp_path / "linux", KernelVersion(6, 12), "git:1:x", "linux")
    arch = arches.get("x86_64")
    monkeypatch.setenv(sandbox.SANDBOX_VARIABLE, "1")
    inside = kernel.BuildOptions(cache_dir=tmp_path)
    monkeypatch.setenv(sandbox.SANDBOX_VARIABLE, "0")
    outside = kernel.BuildOptions(cache_dir=tmp_path)
    assert (inside.sandbox, outside.sandbox) == (True, False)
    assert kernel.workspace(inside, source, arch) == \
        kernel.workspace(outside, source, arch).with_name(
            kernel.workspace(outside, source, arch).name + "-sandbox")
    runners = [kernel._runner(o, tmp_path / "log", lambda line: None, "x", ())
               for o in (inside, outside)]
    assert [r.env["CCACHE_DIR"] for r in runners] == [str(tmp_path / "ccache-sandbox"),
                                                       str(tmp_path / "ccache")]
    assert runners[0].writable == (tmp_path / "ccache-sandbox",)
    assert runners[0].readable == (tmp_path,)
    assert runners[1].bwrap is None
    assert kernel.key_inputs(source, arch, variants.get("sysfs"), inside) == \
        kernel.key_inputs(source, arch, variants.get("sysfs"), outside)


def test_a_sandbox_that_does_not_start_is_the_hosts_error(tmp_path: Path, clone: Path) -> None:
    """bwrap's own complaint (a stand-in: a container that masks /proc) is no build's
    failure: an InfraError naming it, which kheaders-ci blames on no series."""
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho \"bwrap: Can't mount proc on /newroot/proc: Operation "
                    "not permitted\" >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(InfraError) as raised:
        runner(tmp_path, clone, str(fake)).run(make(clone, "inside"))
    assert not isinstance(raised.value, BuildFailed)
    assert str(raised.value).splitlines()[0] == (
        "x86_64-sysfs: start: the build sandbox did not start: bwrap: Can't mount proc on "
        "/newroot/proc: Operation not permitted")


@real
def test_the_ci_s_variables_stay_outside(tmp_path: Path, clone: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI_JOB_TOKEN", "secret-token")
    monkeypatch.setenv("LC_ALL", "C")
    build = runner(tmp_path, clone, sandbox.find_bwrap())
    build.env = {"KBUILD_BUILD_USER": "kheaders"}
    build.run(make(clone, "env"), env={"ARCH": "x86_64"})
    said = log_text(tmp_path)
    assert "secret-token" not in said
    for wanted in ("KBUILD_BUILD_USER=kheaders", "ARCH=x86_64", "LC_ALL=C", "TMPDIR=/tmp",
                   f"PATH={os.environ['PATH']}"):
        assert f"\n{wanted}\n" in said, wanted
