"""The whole integration: when an Order is saved, publish it (and the running
totals) to the broker with the Python client's HTTP publisher. Every view,
admin action or management command that saves an Order updates every open
dashboard; nothing else in the app knows about the broker."""
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Sum
from django.db.models.signals import post_save
from django.dispatch import receiver

import wsbroker

from .models import Order


@receiver(post_save, sender=Order)
def order_saved(sender, instance: Order, created: bool, **kwargs) -> None:
    if not created:
        return

    def publish() -> None:
        totals = Order.objects.aggregate(orders=Count("id"), revenue=Sum("amount"))
        settings.WSBROKER_PUBLISHER.publish("dash.orders", {
            "id": instance.pk, "customer": instance.customer, "amount": float(instance.amount),
            "ts": int(instance.created.timestamp() * 1000),
            "orders": totals["orders"], "revenue": float(totals["revenue"] or 0)})

    # After the commit: a dashboard never shows an order the database rolled back.
    transaction.on_commit(publish)
