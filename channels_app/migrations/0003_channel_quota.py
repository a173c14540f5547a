from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('channels_app', '0002_related_channels'),
    ]

    operations = [
        migrations.AddField(
            model_name='channel',
            name='quota_bytes',
            field=models.PositiveBigIntegerField(blank=True, help_text='Bytes of package files this channel may hold. Empty: the site default (WHARF_CHANNEL_QUOTA_BYTES); 0: no limit.', null=True, verbose_name='storage quota (bytes)'),
        ),
    ]
