"""One module per judge backend; each registers its factory with `tracefail.judge.registry.backend`."""
