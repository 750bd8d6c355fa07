"""A fake kernel build for the verifier's unit tests, and the ways to break it.

    tree.py     the fake source and object trees, .config
    kbuild.py   their archive, made by a real kernel's rules (kernel/Makefile excerpt and
                gen_kheaders.sh from tests/data/kernel-<X.Y>/, run by make via kbuild.mk)
    probe.py    the layout probe compiled with gcc against that archive; the kernel's BTF
    btfgen.py   writing raw BTF (the fake kernel's, and the BTF tests' edge cases)
    tarball.py  re-packing members, for tampers that edit a good archive
    build.py    SyntheticBuild: all of the above, as a guest would report it
    tamper.py   the tamper catalogue the checks are proven against

Test code, not part of kheaders_suite: tests/ and vmtests/ import it as ``tests.synthetic``.
"""
