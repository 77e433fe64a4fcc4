"""One Alembic environment for core and every addon (Indico's approach).

`core.migrate` passes, through `config.attributes`: the open connection, the owner being
migrated (`core` or an addon name), its version table `alembic_version_<owner>`, and the set
of table names it owns. Autogenerate compares only those tables, so an addon's revision never
drops or recreates another addon's tables.
"""
from alembic import context

from core.extensions import db
from core.migrate import table_filter

config = context.config
connection = config.attributes["connection"]
include_name = table_filter(config.attributes)


def include_object(obj, name, type_, reflected, compare_to):
    return include_name(name, type_, {})


context.configure(
    connection=connection,
    target_metadata=db.metadata,
    version_table=f"alembic_version_{config.attributes['owner']}",
    include_name=include_name,
    include_object=include_object,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    compare_server_default=False,
)

with context.begin_transaction():
    context.run_migrations()
