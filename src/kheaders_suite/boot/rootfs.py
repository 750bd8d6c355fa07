"""Step 4a, foreign arches only: a bootable Debian root filesystem for ``vng --root``.

x86_64 guests share the host's root read-only. An arm64 guest cannot run the host's binaries,
so it boots a tree of Debian's arm64 packages, built once per key with mmdebstrap:

    rootfs/<debian_arch>-<key>/       the tree, passed to vng --root (read-only in the guest)
    rootfs/<debian_arch>-<key>.log    mmdebstrap's output and the host-side fix-ups
    rootfs/<debian_arch>-<key>.lock   held while building; the tree is built beside it under
                                      a temporary name and renamed into place when complete

Two methods, picked by ``choose_method``:

- ``SCRIPTS``: a normal install, maintainer scripts and all; foreign binaries run under
  qemu-user-static through binfmt_misc. Needs the qemu-<machine> entry enabled with the F flag
  (the kernel opens the emulator when the entry is registered, so the tree needs no copy of
  it): ``mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc`` and
  ``update-binfmts --enable qemu-aarch64`` (ci/setup).
- ``EXTRACT``: the fallback when binfmt_misc is not usable. qemu-aarch64-static cannot stand
  in for it: it emulates one process, and every exec of another arm64 binary from it fails
  with "Exec format error" (checked: ``chroot <tree> /qemu-aarch64-static /usr/bin/bash -c
  /usr/bin/true`` gives 126). So mmdebstrap only unpacks the .debs and this module does on
  the host what the maintainer scripts would have done, as far as a virtme-ng guest needs:
  merged-/usr symlinks (made before unpacking, as debootstrap does), passwd/group/shadow from
  base-passwd's masters plus sshd's privilege-separation user, the PAM common-* files
  pam-auth-update writes (virtme-ng's sshd_config says UsePAM yes), and the
  update-alternatives links (awk, cc, which, ...).

Measured on this host (2 cores, Debian 12, deb.debian.org), for PACKAGES below:
    SCRIPTS  206 s wall at load ~4 (another engineer's VMs running), 108 s of CPU
             (87 s user + 21 s sys: dpkg and the maintainer scripts under qemu-user);
             360 MB on disk (426 MB before the path-excludes).
    EXTRACT  10 s, 344 MB.
    The same host on 2026-12-07 (2-core AMD EPYC, base commit 4ce386b), SCRIPTS with
    python3-bpfcc and clang-14 added (10 more packages: libbpfcc, libclang-cpp14,
    libclang-common-14-dev, libstdc++-12-dev, ...; libllvm14 came with libclang1-14
    already): 183 s wall at load ~2-4, 660 MB (555 MB for the list without them, built
    in 247 s at another load: the build time is the host's noise, the size is +105 MB).
Both trees boot the arm64 6.12 kernel to SSH in ~30-40 s under TCG (details in
arches/arm64.py), and run gcc, python3, perl, tar and xz.

How vng mounts it: 9p, mount tag "/dev/root", read-only, rootfstype=9p and no root=. A 6.12
kernel without CONFIG_BLOCK then panics with "Requested init /bin/sh failed (error -2)"
after "9pnet_virtio: no channels available for device ": init/do_mounts.c tries the 9p mount
with the empty root= name and the "/dev/root" fallback is in mount_block_root(), compiled out.
Fix: CONFIG_BLOCK=y, or ``--append root=/dev/root`` (how the figures here were taken). vng
overlays tmpfs on /etc /lib /home /opt /srv /usr /var /tmp, so those are writable in the
guest; /root and / are not (a --rodir whose guest path is missing under them kills init).

What virtme-ng's bash init (virtme/guest/virtme-init: the Rust virtme-ng-init is x86_64 only)
needs from the tree: bash (#!/usr/bin/env bash), coreutils (install, mktemp, base64, id,
stty, ...), util-linux (setsid, su) and mount, grep, sed, kmod, iproute2 (ip) and busybox for
DHCP (``busybox udhcpc`` with virtme-udhcpc-script), openssh-server with ssh-keygen and
sftp-server, and ``poweroff -f`` to end an --exec run (busybox's, linked below; Debian's own
poweroff comes with an init system). The suite's own init (guestinit, the default) needs
less: mount, a static busybox (its shell runs mount, mkdir, ln and ip as applets, without an
exec) and sshd. Left out on purpose: udev (its coldplug costs seconds
under TCG; without it /dev/virtio-ports/ is missing and ``vng --exec`` falls back to the
serial console; SSH does not care), kbd (openvt/deallocvt: only an error line on the console).
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from kheaders_suite.catalog.arches.arch import Arch
from kheaders_suite.errors import InfraError, UserError
from kheaders_suite.host import proc
from kheaders_suite.host.locks import file_lock
from kheaders_suite.records import Progress

# Part of the key: bump when the steps below change what ends up in the tree.
RECIPE_VERSION = "1"
# The host's release: the guest's gcc, python3 and perl are then the ones the host tests with.
SUITE = "bookworm"
PACKAGES: tuple[str, ...] = (
    "bash", "coreutils", "util-linux", "mount", "grep", "sed",  # virtme-init itself
    "kmod",  # modprobe/rmmod of kheaders.ko (CONFIG_IKHEADERS=m)
    "procps", "iproute2",
    # udhcpc for --ssh-tcp networking and poweroff -f; static, so the suite's init
    # (guestinit) runs its applets without an exec, as on the host (ci/setup installs it)
    "busybox-static",
    "openssh-server", "openssh-sftp-server",  # sftp-server is only a Recommends
    "tar", "xz-utils", "perl",  # what gen_kheaders.sh and `tar -xJf` of the archive use
    "gcc", "libc6-dev",  # compile against the extracted headers
    "python3",
    # clang's front end as a library, for the in-memory strategy (inguest/frontend.py;
    # its pure-Python binding, python3-clang, is sent from the host: as a package it would
    # pull libclang-14-dev, static libraries and all)
    "libclang1-14",
    # the archive's real consumers (vmtests/test_bcc.py, the sweep's clang-bpf workload):
    # bcc, which links LLVM 14 itself, and the clang 14 it builds on as a compiler driver
    "python3-bpfcc", "clang-14",
)
# EXTRACT unpacks only what is named and its dependencies: name the Essential:yes set too
# (dash for /bin/sh, base-passwd, mawk via base-files, ...), as an apt pattern.
ESSENTIAL_PATTERN = "?essential"
# Nothing the tests read; ~60 MB fewer files to unpack (dpkg honours these in SCRIPTS only,
# EXTRACT removes them afterwards).
TRIMMED = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale")
HOST_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
# Merged /usr, as debootstrap's setup_merged_usr: bookworm packages still ship /bin etc.
MERGED_DIRS: Mapping[str, tuple[str, ...]] = {
    "amd64": ("bin", "sbin", "lib", "lib32", "lib64", "libx32"),
}
DEFAULT_MERGED_DIRS = ("bin", "sbin", "lib")
BUILD_TIMEOUT = 3600.0
STALE_INIT_SCRIPT_AGE = 3600.0


class Method(enum.Enum):
    SCRIPTS = "scripts"  # full install, maintainer scripts under qemu-user via binfmt_misc
    EXTRACT = "extract"  # unpack only, host-side fix-ups


def binfmt_ready(machine: str, binfmt_dir: Path = BINFMT_DIR) -> bool:
    """True if qemu-<machine> is registered, enabled, and has the F (fix binary) flag."""
    try:
        lines = (binfmt_dir / f"qemu-{machine}").read_text().splitlines()
    except OSError:
        return False
    flags = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("flags:")), "")
    return bool(lines) and lines[0].strip() == "enabled" and "F" in flags


def choose_method(arch: Arch, binfmt_dir: Path = BINFMT_DIR) -> Method:
    if arch.is_native or binfmt_ready(arch.uts_machine, binfmt_dir):
        return Method.SCRIPTS
    return Method.EXTRACT


def rootfs_key(arch: Arch, method: Method, packages: Iterable[str] = PACKAGES) -> str:
    """Hash of everything that decides the tree (pure)."""
    parts = {"recipe": RECIPE_VERSION, "suite": SUITE, "arch": arch.debian_arch,
             "method": method.value, "packages": sorted(packages)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def mmdebstrap_command(target: Path, arch: Arch, method: Method,
                       packages: Iterable[str] = PACKAGES,
                       sources: Path | None = HOST_SOURCES) -> tuple[str, ...]:
    """The mmdebstrap command line (pure). ``sources``: the host's deb822 file, so the guest
    comes from the same mirror the host uses; None lets mmdebstrap pick deb.debian.org."""
    cmd: tuple[str, ...] = ("mmdebstrap", "--mode=root", "--verbose",
                            f"--architectures={arch.debian_arch}")
    if method is Method.SCRIPTS:
        cmd += ("--variant=essential",)
        cmd += tuple(f"--dpkgopt=path-exclude=/{d}/*" for d in TRIMMED)
        if not arch.is_native:
            # binfmt_ready() checked what mmdebstrap would ask arch-test (not installed here).
            cmd += ("--skip=check/qemu",)
    else:
        # The tree is not empty: the merged-/usr links are made before unpacking.
        cmd += ("--variant=extract", "--skip=check/empty",
                f"--include={ESSENTIAL_PATTERN}")
    cmd += (f"--include={','.join(packages)}", SUITE, str(target))
    if sources is not None:
        cmd += (str(sources),)
    return cmd


def ensure_rootfs(cache_dir: Path, arch: Arch, progress: Progress) -> Path:
    """The tree for ``arch``, built first if this key has none yet.

    A SCRIPTS tree is preferred, and used even when binfmt_misc has gone since it was built
    (a tree does not need the emulator once built); EXTRACT only when no SCRIPTS tree exists
    and none can be built now.
    """
    tree = ready_tree(cache_dir, arch)
    if tree is not None:
        remove_stale_init_scripts(tree)
        return tree
    method = choose_method(arch)
    base = cache_dir / "rootfs"
    final = tree_path(base, arch, method)
    check_buildable(arch, base)
    with file_lock(final.with_name(f"{final.name}.lock"), timeout=BUILD_TIMEOUT):
        if final.is_dir():  # another worker built it while we waited
            return final
        _build(final, arch, method, final.with_name(f"{final.name}.log"), progress)
    return final


def ready_tree(cache_dir: Path, arch: Arch) -> Path | None:
    """The cached tree for ``arch`` (a SCRIPTS tree first), or None."""
    for method in (Method.SCRIPTS, choose_method(arch)):
        tree = tree_path(cache_dir / "rootfs", arch, method)
        if tree.is_dir():
            return tree
    return None


def check_buildable(arch: Arch, base: Path) -> None:
    """What building a tree needs from the host: mmdebstrap, and root."""
    if shutil.which("mmdebstrap") is None:
        raise UserError(f"mmdebstrap not found, needed for the {arch.name} guest's root "
                        "filesystem: run ci/setup (Debian: apt-get install mmdebstrap "
                        "qemu-user-static binfmt-support)")
    if os.geteuid() != 0:
        raise UserError(f"building the {arch.debian_arch} root filesystem needs root "
                        "(mmdebstrap --mode=root keeps file owners right for vng --root); "
                        f"run once as root to fill {base}")


def check_host(cache_dir: Path, arch: Arch) -> None:
    """At configure time: a foreign arch with no tree in the cache yet will need to build
    one, so the host must be able to (instead of failing at the first boot, after the
    kernel build)."""
    if not arch.is_native and ready_tree(cache_dir, arch) is None:
        check_buildable(arch, cache_dir / "rootfs")


def tree_path(base: Path, arch: Arch, method: Method) -> Path:
    return base / f"{arch.debian_arch}-{rootfs_key(arch, method)}"


def remove_stale_init_scripts(tree: Path, max_age: float = STALE_INIT_SCRIPT_AGE,
                              now: float | None = None) -> None:
    """Delete old /virtme-init-* files virtme-ng left in the tree.

    With --root and a kernel command line over the arch's limit (1024 bytes on arm64, which
    an SSH boot exceeds), virtme-ng writes its early init script into the root directory and
    removes it at exit; a VM ended by SIGKILL leaves it behind. The guest reads it only while
    booting, so one an hour old belongs to no live boot.
    """
    now = time.time() if now is None else now
    for path in tree.glob("virtme-init-*"):
        with contextlib.suppress(OSError):
            if path.is_file() and now - path.stat().st_mtime > max_age:
                path.unlink()


def _build(final: Path, arch: Arch, method: Method, log: Path, progress: Progress) -> None:
    start = time.monotonic()
    tmp = final.with_name(f".{final.name}.tmp")
    if tmp.exists():  # left by a build that died
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    log.write_text(f"# {arch.debian_arch} rootfs, method {method.value}, into {tmp}\n")
    progress(f"rootfs {arch.debian_arch}: building ({method.value}), log {log}")
    if method is Method.EXTRACT:
        make_merged_usr(tmp, MERGED_DIRS.get(arch.debian_arch, DEFAULT_MERGED_DIRS))
    sources = HOST_SOURCES if HOST_SOURCES.is_file() else None
    proc.run_logged(mmdebstrap_command(tmp, arch, method, sources=sources), log,
                    what="mmdebstrap", error=InfraError, timeout=BUILD_TIMEOUT, tail_lines=20)
    if method is Method.EXTRACT:
        extract_fixups(tmp)
    common_fixups(tmp)
    size = _tree_bytes(tmp)
    tmp.rename(final)
    seconds = time.monotonic() - start
    with log.open("a") as sink:
        sink.write(f"# done in {seconds:.0f}s, {size / 1e6:.0f} MB\n")
    progress(f"rootfs {arch.debian_arch}: built in {seconds:.0f}s, {size / 1e6:.0f} MB")


def make_merged_usr(root: Path, dirs: Iterable[str]) -> None:
    """/bin -> usr/bin etc., before anything is unpacked (what debootstrap does)."""
    for d in dirs:
        (root / "usr" / d).mkdir(parents=True, exist_ok=True)
        (root / d).symlink_to(f"usr/{d}")


def common_fixups(root: Path) -> None:
    """For both methods: what virtme-init calls and Debian leaves to an init system."""
    # virtme-init ends an --exec run with `poweroff -f`; busybox's does the reboot(2) itself.
    _link(root, "usr/local/sbin/poweroff", "/usr/bin/busybox")
    for d in TRIMMED:  # EXTRACT unpacked them; SCRIPTS left the empty directories
        shutil.rmtree(root / d, ignore_errors=True)


# sshd's privilege separation user, as openssh-server's postinst makes it (first system uid).
SSHD_USER = "sshd:x:100:65534::/run/sshd:/usr/sbin/nologin"
# What pam-auth-update writes from libpam-runtime's pam-configs on a fresh bookworm install.
PAM_COMMON: Mapping[str, str] = {
    "common-auth": "auth [success=1 default=ignore] pam_unix.so nullok\n"
                   "auth requisite pam_deny.so\nauth required pam_permit.so\n",
    "common-account": "account [success=1 new_authtok_reqd=done default=ignore] pam_unix.so\n"
                      "account requisite pam_deny.so\naccount required pam_permit.so\n",
    "common-password": "password [success=1 default=ignore] pam_unix.so obscure yescrypt\n"
                       "password requisite pam_deny.so\npassword required pam_permit.so\n",
    "common-session": "session [default=1] pam_permit.so\nsession requisite pam_deny.so\n"
                      "session required pam_permit.so\nsession required pam_unix.so\n",
}
# update-alternatives links the postinsts make (link -> target), for the tools tests may call.
ALTERNATIVES: Mapping[str, str] = {
    "usr/bin/awk": "/usr/bin/mawk", "usr/bin/nawk": "/usr/bin/mawk",
    "usr/bin/cc": "/usr/bin/gcc", "usr/bin/c89": "/usr/bin/c89-gcc",
    "usr/bin/c99": "/usr/bin/c99-gcc", "usr/bin/which": "/usr/bin/which.debianutils",
    "usr/bin/lzma": "/usr/bin/xz", "usr/bin/unlzma": "/usr/bin/unxz",
    "usr/bin/lzcat": "/usr/bin/xzcat", "usr/bin/pager": "/usr/bin/more",
}


def account_files(passwd_master: str, group_master: str) -> dict[str, str]:
    """/etc/passwd, group and shadow from base-passwd's masters, plus sshd (pure)."""
    passwd = passwd_master.rstrip("\n") + "\n" + SSHD_USER + "\n"
    users = [line.split(":", 1)[0] for line in passwd.splitlines() if line]
    # Locked ("*"): virtme-init bind-mounts its own shadow over it; this one only has to exist.
    shadow = "".join(f"{u}:*:19000:0:99999:7:::\n" for u in users)
    return {"passwd": passwd, "group": group_master.rstrip("\n") + "\n", "shadow": shadow}


def extract_fixups(root: Path) -> None:
    """Stand-ins for the maintainer scripts EXTRACT did not run (see the module docstring)."""
    etc = root / "etc"
    masters = root / "usr/share/base-passwd"
    files = account_files((masters / "passwd.master").read_text(),
                          (masters / "group.master").read_text())
    for name, text in files.items():
        (etc / name).write_text(text)
    (etc / "shadow").chmod(0o640)
    for name, text in PAM_COMMON.items():
        (etc / "pam.d" / name).write_text(text)
    (etc / "pam.d/common-session-noninteractive").write_text(PAM_COMMON["common-session"])
    # Bind-mount targets of virtme-init and virtme-udhcpc-script on a read-only root.
    for name in ("fstab", "resolv.conf", "hostname"):
        (etc / name).touch()
    for d in ("mnt", "opt", "srv", "media"):  # mmdebstrap makes these in the other variants
        (root / d).mkdir(exist_ok=True)
    for link, target in ALTERNATIVES.items():
        if (root / target.lstrip("/")).exists():
            _link(root, link, target)


def _link(root: Path, link: str, target: str) -> None:
    path = root / link
    if path.is_symlink() or path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)


def _tree_bytes(root: Path) -> int:
    total = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath, name)
            if not path.is_symlink():
                total += path.stat().st_size
    return total
