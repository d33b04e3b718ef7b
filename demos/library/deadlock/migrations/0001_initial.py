"""The deadlock demo's own table: a pair of account rows per run."""

from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name='DeadlockAccount',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('run_id', models.UUIDField(help_text='Fresh per run: both rows of a pair carry the same one.')),
                ('name', models.CharField(help_text='A or B: which end of the pair this row is.', max_length=1)),
                ('balance', models.BigIntegerField(default=0)),
            ],
            options={'db_table': 'deadlock_account'},
        ),
        migrations.AddConstraint(
            model_name='deadlockaccount',
            constraint=models.UniqueConstraint(fields=('run_id', 'name'), name='deadlock_account_one_name_per_run'),
        ),
    ]
