"""The documentation site's generated pages: rendered from the schema, a run's CSVs and the
benchmark CSVs, never typed (`lowdensity render-docs`, the `docs` rule, `make docs`)."""
