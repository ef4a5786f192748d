"""What the pages show, computed in core: one function per page section over the store.

Pages call these (cached by the data version) and only draw; the CLI and the job runner can call
the same functions.
"""
