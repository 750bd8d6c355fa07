"""rmmod kheaders while this process holds the archive open; print JSON of what happened.

Run in the guest: python3 holdopen.py MODROOT PATH. It only reports; the host judges the
report (vmtests/test_kheaders_ko.py, holdopen_problems: rmmod must succeed and the open
descriptor must then fail with ENODEV).
"""

import json
import os
import subprocess
import sys


def main(modroot: str, path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    first = len(os.read(fd, 4096))
    rmmod = subprocess.run(("modprobe", "-r", "-d", modroot, "kheaders"), capture_output=True)
    try:
        after = f"read {len(os.pread(fd, 4096, 0))}"
    except OSError as exc:
        after = f"errno {exc.errno}"
    os.close(fd)
    print(json.dumps({"first_read": first, "rmmod_rc": rmmod.returncode,
                      "rmmod_stderr": rmmod.stderr.decode(errors="replace"), "after": after,
                      "present": os.path.exists(path)}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
