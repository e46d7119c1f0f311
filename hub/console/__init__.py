"""The operators' web console: FastAPI + Jinja2 pages and a JSON API under ``/api``.

Served by ``xl-hub run`` when the config has a ``console:`` section, or alone by
``xl-hub console --config FILE``. Accounts: ``xl-hub user add NAME --role ROLE``.
"""

from hub.console import tables  # noqa: F401  (registers migration 200)
