"""Clients of a running rollout: the Python API on a Ray cluster (``rayrollout.client.api``)
and the admin API over HTTP (``rayrollout.client.admin``)."""

from rayrollout.client.admin import AdminClient
from rayrollout.client.api import Rollout, connect, controller_handle, ensure_serving, start

__all__ = ["AdminClient", "Rollout", "connect", "controller_handle", "ensure_serving", "start"]
