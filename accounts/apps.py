from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"
    # allauth's e-mail app is labelled "Accounts" in the admin too.
    verbose_name = "Users and API tokens"
