from pathlib import Path

from kheaders_suite import arches, build, variants
from kheaders_suite.paths import CONFIGS_DIR

from .test_vm import fake_build


def test_key_is_stable_and_sensitive_to_every_input() -> None:
    parts = {"harness": "1", "source": "s", "fragment:base.config": "CONFIG_A=y\n"}
    key = build.build_key(parts)
    assert key == build.build_key(dict(reversed(list(parts.items()))))
    for name in parts:
        assert build.build_key({**parts, name: parts[name] + "x"}) != key


def test_fragments_base_then_arch_then_variant_then_extra() -> None:
    frags = build.fragments_for(arches.get("arm64"), variants.get("module"), (Path("/x.config"),))
    assert frags == [CONFIGS_DIR / "base.config", CONFIGS_DIR / "arch-arm64.config",
                     CONFIGS_DIR / "variant-module.config", Path("/x.config")]
    assert all(f.exists() for f in frags[:3])


def test_every_arch_and_variant_has_its_fragment() -> None:
    for arch in arches.names():
        assert (CONFIGS_DIR / arches.get(arch).fragment).is_file()
    for variant in variants.VARIANTS:
        assert (CONFIGS_DIR / variant.fragment).is_file()


def test_build_record_round_trips_through_json() -> None:
    record = fake_build()
    again = build.KernelBuild.from_json(record.to_json())
    assert again == record
    assert again.cached
    assert isinstance(again.image, Path)
