"""The counter rows of the `counter-race` demo: this demo package's own table.

Every trial of every run inserts its own row, keyed by a fresh UUID, so two
readers racing their clients at the same moment never touch each other's
count; the demo deletes its rows when the run ends.
"""
from django.db import models


class RaceCounter(models.Model):
    run_id = models.UUIDField(unique=True, help_text="Fresh per trial: the row belongs to one trial of one run.")
    n = models.BigIntegerField(default=0)
    # Bumped by every write in `optimistic` mode: a write that names an old version matches no row.
    version = models.BigIntegerField(default=0)

    class Meta:
        # Readers see this name in the SQL the demo shows them: short and plain.
        db_table = "race_counter"

    def __str__(self) -> str:
        return f"counter {self.run_id}: {self.n} (version {self.version})"
