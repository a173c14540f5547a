from django.apps import AppConfig


class PackagesAppConfig(AppConfig):
    name = "packages_app"
    verbose_name = "Packages"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from channels_app import lifecycle
        from packages_app import tasks
        from packages_app.index.publishing import publish_empty_noarch
        from packages_app.intake.uploads import forget_channel_storage
        from packages_app.upstream.mirror import first_run

        tasks.register()
        # A channel's index and stored files are this app's: a new channel gets its empty
        # noarch index, a deleted one loses its files (channels_app.lifecycle calls these).
        lifecycle.register(created=publish_empty_noarch, deleted=forget_channel_storage)
        # A new mirror channel starts copying as soon as it is committed.
        lifecycle.register(created=first_run)
