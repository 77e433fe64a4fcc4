"""The default sales funnel (stages, lost reasons) from `birga init`, not the first board visit
(`core.seeding`); `state.seed_defaults` stays idempotent and keeps an admin's edits."""
from .state import seed_defaults


def seed() -> None:
    seed_defaults()
