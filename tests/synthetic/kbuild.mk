# Just enough kbuild for make to run a kernel's own kheaders rules on a synthetic tree.
#
# RULES is a verbatim excerpt of that kernel's kernel/Makefile (tests/data/kernel-*/kernel/
# Makefile); the rules in it decide the file lists and how gen_kheaders.sh is called. What
# they take from the top Makefile and scripts/Kbuild.include is defined here, cut down to
# what the rules do on a clean O= build: no .cmd bookkeeping, no "is it up to date" test.
# Run by tests/synthetic/kbuild.py as make -rR -C <objtree> -f <this> RULES=... <target>.

# The top Makefile: an O= build from the object tree, with these exported to every recipe.
obj := kernel
src := $(srctree)/kernel
CONFIG_SHELL := sh
TAR := tar
XZ := xz
building_out_of_srctree := 1
export srctree SRCARCH KBUILD_BUILD_TIMESTAMP CONFIG_SHELL TAR XZ building_out_of_srctree

# scripts/Kbuild.include, reduced: run the command, write the file.
comma := ,
dot-target = $(dir $@).$(notdir $@)
depfile = $(subst $(comma),_,$(dot-target).d)
cmd = $(cmd_$(1))
cmd_and_savecmd = $(cmd_$(1))
if_changed_rule = $(rule_$(1))
filechk = mkdir -p $(dir $@) && { $(filechk_$(1)); } > $@

.PHONY: FORCE
FORCE:

include $(RULES)
