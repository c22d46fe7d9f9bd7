"""The `nmt` command-line app (installed as the package `nmt_cli`)."""
