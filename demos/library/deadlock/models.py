"""The two rows every `deadlock` run transfers between: this demo package's own table.

A run inserts a pair of accounts (`A` and `B`) under a fresh UUID, so two
readers running the demo at the same moment lock only their own rows and
never deadlock with each other; the run deletes its pair when it ends.
"""
from django.db import models


class DeadlockAccount(models.Model):
    run_id = models.UUIDField(help_text="Fresh per run: both rows of a pair carry the same one.")
    name = models.CharField(max_length=1, help_text="A or B: which end of the pair this row is.")
    balance = models.BigIntegerField(default=0)

    class Meta:
        # Readers see this name in the SQL and in PostgreSQL's error context: short and plain.
        db_table = "deadlock_account"
        constraints = [models.UniqueConstraint(fields=["run_id", "name"], name="deadlock_account_one_name_per_run")]

    def __str__(self) -> str:
        return f"account {self.name} of run {self.run_id}: {self.balance}"
