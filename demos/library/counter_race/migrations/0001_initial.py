"""The counter-race demo's own table (it used to live in the engine's app as demos_racecounter)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name='RaceCounter',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('run_id', models.UUIDField(help_text='Fresh per trial: the row belongs to one trial of one run.', unique=True)),
                ('n', models.BigIntegerField(default=0)),
                ('version', models.BigIntegerField(default=0)),
            ],
            options={'db_table': 'race_counter'},
        ),
    ]
