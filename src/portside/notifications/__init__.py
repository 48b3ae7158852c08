"""Webhook notifications: events recorded in a durable outbox and delivered at least once to each endpoint."""

from portside.notifications.delivery import PENDING_EVENTS, Dispatcher
from portside.notifications.events import EVENTS_MEDIA_TYPE, NotificationSink, RequestRecord

__all__ = ["EVENTS_MEDIA_TYPE", "PENDING_EVENTS", "Dispatcher", "NotificationSink", "RequestRecord"]
