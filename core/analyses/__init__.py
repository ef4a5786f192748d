"""What the pages show, computed in core: one function per page section over the store.

The jobs of :mod:`core.jobs` run these in the background and persist their results, which the pages read
(``ui.jobs.job_result``); the CLI's ``analyze`` runs the same jobs.
"""
