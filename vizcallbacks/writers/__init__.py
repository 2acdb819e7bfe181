"""writers stage of vizcallbacks (see the package docstring)."""
