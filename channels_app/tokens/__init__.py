"""API tokens limited to channels: the rule (``rules``), the REST endpoints (``api``)
and the API keys page (``views``, ``forms``).

The token itself — its secret, digest and checks — is ``accounts``'; which channels a
token may be limited to is a question of channel roles, so it is answered here.
"""
