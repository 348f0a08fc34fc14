#!/usr/bin/env python3
"""The dashboard example's backend: a one-file Django project (Debian's
python3-django) with one app, `shop`, whose Order model publishes every new
order from a post_save signal (shop/signals.py). The page shows those and the
broker's own `$sys` node statistics; it only subscribes.

Routes: / (the page), /config.json, /api/token (dev sign-in: read dash.> and
$sys.node.>), POST /api/orders {customer, amount} (saves an Order; a real
shop would do it in its checkout)."""
from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
from decimal import Decimal, InvalidOperation
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "common"))
import devkit  # noqa: E402  (also puts clients/python on sys.path)
import wsbroker  # noqa: E402

args = devkit.parse_args("dashboard example backend (Django)")
SECRET = devkit.secret_of(args.config)
API_KEY = json.loads(args.config.read_text())["api_keys"][0].split(":", 1)[0]
DB = tempfile.NamedTemporaryFile(prefix="wsb-dashboard-", suffix=".sqlite3", delete=False).name

from django.conf import settings  # noqa: E402

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    SECRET_KEY="examples-dashboard-django-dev-only",
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=["shop.apps.ShopConfig"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": DB}},
    USE_TZ=True,
    WSBROKER_PUBLISHER=wsbroker.HttpPublisher(args.broker_http, API_KEY),
)

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.http import HttpResponse, JsonResponse  # noqa: E402
from django.urls import path, re_path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402
from django.views.decorators.http import require_POST  # noqa: E402

from shop.models import Order  # noqa: E402


def config(request):
    return JsonResponse({"ws": args.broker_ws, "http": args.broker_http})


def token(request):
    user = request.GET.get("user", "")
    if not devkit.valid_name(user):
        return JsonResponse({"error": "user: 1 to 32 letters, digits, . _ -"}, status=400)
    return JsonResponse({"user": user, "token": devkit.mint(SECRET, user, subscribe=["dash.>", "$sys.node.>"],
                                                            publish=[])})


@csrf_exempt  # the API takes the bearer token, not a session cookie
@require_POST
def orders(request):
    auth = request.headers.get("Authorization", "")
    if not devkit.verify(SECRET, auth.removeprefix("Bearer ")):
        return JsonResponse({"error": "sign in first"}, status=401)
    try:
        body = json.loads(request.body or b"{}")
        customer = str(body.get("customer", "")).strip()[:32]
        amount = Decimal(str(body.get("amount")))
    except (ValueError, InvalidOperation, AttributeError):
        return JsonResponse({"error": "amount: a number"}, status=400)
    if not customer or not (Decimal("0.01") <= amount <= Decimal("100000")):
        return JsonResponse({"error": "customer and an amount from 0.01 to 100000"}, status=400)
    order = Order.objects.create(customer=customer, amount=amount.quantize(Decimal("0.01")))
    return JsonResponse({"id": order.pk})


def page(request, rest=""):
    found = devkit.static_file(HERE, "/" + rest)
    if found is None:
        return HttpResponse("not found\n", status=404, content_type="text/plain")
    resp = HttpResponse(found[0], content_type=found[1])
    resp["Cache-Control"] = "no-store"
    return resp


urlpatterns = [
    path("config.json", config),
    path("api/token", token),
    path("api/orders", orders),
    re_path(r"^(?P<rest>.*)$", page),
]


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *a) -> None:
        pass


if __name__ == "__main__":
    from django.core.wsgi import get_wsgi_application

    # SIGTERM (examples/run stopping) ends serve_forever like Ctrl-C, so the database file goes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    call_command("migrate", run_syncdb=True, verbosity=0)
    server = make_server(args.host, args.port, get_wsgi_application(),
                         server_class=ThreadingWSGIServer, handler_class=QuietHandler)
    devkit.write_port_file(args.port_file, server.server_port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        os.unlink(DB)
