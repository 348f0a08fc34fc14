from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "shop"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the post_save receiver)
