"""Organisations, their members, invitations and teams, and what they do to channels.

Their records are ``accounts`` models; their rules (``operations``), REST (``api``), web
pages (``views``, ``forms``), serializers and admin live here, next to the channels,
memberships and the access policy they act on.
"""
