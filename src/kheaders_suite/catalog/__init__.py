"""Catalogue data: architectures, variants, where files live."""
