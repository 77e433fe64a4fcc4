"""The shipped offer, contract and letter templates, copied into the database by `birga init`
(`core.seeding`), so the client card's Print panel lists them without a page having to seed
(and commit) while answering a GET. Idempotent: a template already there is left as it is."""
from .template_views import ensure_defaults


def seed() -> None:
    ensure_defaults()
